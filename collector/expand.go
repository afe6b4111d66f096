// expand.go: ADOT's bare $VAR in configs, rewritten to ${env:VAR} before the resolver expands it.
package main

import (
	"context"
	"strings"

	"go.opentelemetry.io/collector/confmap"
)

// ADOT's collector expanded $VAR and ${VAR} from the environment. The resolver here
// expands ${VAR} itself (default scheme env) but leaves $VAR alone. A converter would
// run too late for $VAR: by then the resolver has unescaped $$ and typed every value,
// so it could not tell an escaped "$$VAR" from "$VAR" nor make "$PORT" an integer.
// So the config documents that providers return are rewritten first: $VAR becomes
// ${env:VAR}, which the resolver then expands with its usual typing and escaping.
// Only documents (maps) are rewritten, never scalar values such as an ${env:SECRET}
// that happens to hold a "$".

// expandingProviders wraps every factory so its documents get the rewrite.
func expandingProviders(factories ...confmap.ProviderFactory) []confmap.ProviderFactory {
	out := make([]confmap.ProviderFactory, len(factories))
	for i, f := range factories {
		out[i] = confmap.NewProviderFactory(func(set confmap.ProviderSettings) confmap.Provider {
			return expandingProvider{f.Create(set)}
		})
	}
	return out
}

type expandingProvider struct {
	confmap.Provider
}

func (p expandingProvider) Retrieve(ctx context.Context, uri string, watcher confmap.WatcherFunc) (*confmap.Retrieved, error) {
	ret, err := p.Provider.Retrieve(ctx, uri, watcher)
	if err != nil {
		return nil, err
	}
	raw, err := ret.AsRaw()
	if err != nil {
		return nil, err
	}
	doc, ok := raw.(map[string]any)
	if !ok {
		return ret, nil
	}
	return confmap.NewRetrieved(rewriteBareVars(doc), confmap.WithRetrievedClose(ret.Close))
}

// rewriteBareVars walks maps and lists and rewrites every string in them.
func rewriteBareVars(v any) any {
	switch t := v.(type) {
	case string:
		return rewriteString(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = rewriteBareVars(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = rewriteBareVars(x)
		}
		return out
	}
	return v
}

// rewriteString turns $NAME into ${env:NAME}. "$$" (the resolver's escape for "$"),
// "${...}" (left to the resolver) and a "$" before anything else are kept as written.
func rewriteString(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		next := s[i+1]
		switch {
		case next == '$':
			b.WriteString("$$")
			i++
		case isNameStart(next):
			j := i + 2
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			b.WriteString("${env:" + s[i+1:j] + "}")
			i = j - 1
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func isNameStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || ('0' <= c && c <= '9') }
