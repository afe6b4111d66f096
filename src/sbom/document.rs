//! The CycloneDX document for an inventory, built with the `cyclonedx-bom` model: the layer as
//! the main component, then Python distributions, programs, Go modules and the layer's files,
//! in a fixed order so that the same layer always gives the same bytes.

use std::collections::BTreeMap;

use cyclonedx_bom::models::bom::{Bom, SpecVersion, UrnUuid};
use cyclonedx_bom::models::component::{Classification, Component, Components};
use cyclonedx_bom::models::dependency::{Dependencies, Dependency};
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::license::{License, LicenseChoice, Licenses};
use cyclonedx_bom::models::metadata::Metadata;
use cyclonedx_bom::models::property::{Properties, Property};
use cyclonedx_bom::models::tool::Tools;
use cyclonedx_bom::prelude::{DateTime, Purl, SpdxExpression};

use super::SbomError;
use super::gobuild::{self, Module};
use super::inventory::{Inventory, LayerId, Program, PythonDist};
use super::python::LicenseRef;
use crate::support::text;

/// The CycloneDX version written: the newest `cyclonedx-bom` 0.8 can write.
pub(crate) const SPEC: SpecVersion = SpecVersion::V1_5;

/// Names of the properties layerbuild adds (CycloneDX property names are free-form; a prefix
/// keeps ours apart).
pub(crate) mod prop {
    pub const PATH: &str = "layerbuild:path";
    pub const ARCH: &str = "layerbuild:arch";
    pub const RUNTIMES: &str = "layerbuild:runtimes";
    pub const PY_RUNTIMES: &str = "layerbuild:python:runtimes";
    pub const PY_ARCH: &str = "layerbuild:python:arch";
    pub const PY_DIST_INFO: &str = "layerbuild:python:dist-info";
    pub const PY_WHEEL: &str = "layerbuild:python:wheel";
    pub const GO_VERSION: &str = "layerbuild:go:version";
    pub const GO_PACKAGE: &str = "layerbuild:go:package";
    pub const GO_BUILD: &str = "layerbuild:go:build";
    pub const GO_NO_INFO: &str = "layerbuild:go:buildinfo-unread";
    pub const GO_REPLACES: &str = "layerbuild:go:replaces";
}

/// Our name space for serial numbers (a fixed random UUID): the serial number is a name-based
/// UUID of the zip's sha256, so the same zip always gets the same one.
const SERIAL_NAMESPACE: uuid::Uuid = uuid::uuid!("5b0c1d9e-6f47-4c1a-9a63-2f8e0b7d4e21");

/// The document as JSON, with a final newline.
pub(crate) fn json(inv: &Inventory) -> Result<Vec<u8>, SbomError> {
    let bom = bom(inv)?;
    let result = cyclonedx_bom::validation::Validate::validate_version(&bom, SPEC);
    if !result.passed() {
        return Err(SbomError::Write(format!("{result:?}")));
    }
    let mut out = Vec::new();
    bom.output_as_json_v1_5(&mut out)
        .map_err(|e| SbomError::Write(e.to_string()))?;
    // Names, METADATA fields and Go build settings come from the layer: nothing in them may
    // act on the terminal the document is printed to.
    let text = String::from_utf8(out).map_err(|e| SbomError::Write(e.to_string()))?;
    let mut out = text::json_safe(text).into_bytes();
    out.push(b'\n');
    Ok(out)
}

fn bom(inv: &Inventory) -> Result<Bom, SbomError> {
    let layer = layer_component(&inv.layer);
    let layer_ref = layer.bom_ref.clone().expect("the layer has a ref");
    let mut components = Vec::new();
    let mut top = Vec::new();
    for d in &inv.python {
        components.push(python_component(d));
    }
    let mut modules: BTreeMap<String, Component> = BTreeMap::new();
    let mut dependencies = Vec::new();
    for p in &inv.programs {
        let (c, deps) = program_component(p, &mut modules);
        dependencies.push(Dependency {
            dependency_ref: c.bom_ref.clone().expect("a program has a ref"),
            dependencies: deps,
        });
        components.push(c);
    }
    for f in &inv.files {
        let mut c = Component::new(Classification::File, &f.path, "", Some(file_ref(&f.path)));
        c.version = None;
        c.hashes = sha256(&f.sha256);
        c.properties = props(vec![(prop::PATH, f.path.clone())]);
        components.push(c);
    }
    top.extend(components.iter().filter_map(|c| c.bom_ref.clone()));
    components.extend(modules.into_values());
    dependencies.insert(
        0,
        Dependency {
            dependency_ref: layer_ref,
            dependencies: top,
        },
    );
    Ok(Bom {
        version: 1,
        serial_number: Some(serial(&inv.layer)),
        metadata: Some(Metadata {
            timestamp: Some(DateTime::try_from(inv.layer.time.clone()).map_err(|e| SbomError::Write(e.to_string()))?),
            tools: Some(tools()),
            component: Some(layer),
            ..Metadata::default()
        }),
        components: Some(Components(components)),
        services: None,
        external_references: None,
        dependencies: Some(Dependencies(dependencies)),
        compositions: None,
        properties: None,
        vulnerabilities: None,
        signature: None,
        annotations: None,
        formulation: None,
        spec_version: SPEC,
    })
}

fn serial(layer: &LayerId) -> UrnUuid {
    let name = format!("{}:sha256:{}", layer.made_from, layer.zip_sha256);
    UrnUuid::from(uuid::Uuid::new_v5(&SERIAL_NAMESPACE, name.as_bytes()))
}

fn tools() -> Tools {
    let me = Component::new(
        Classification::Application,
        "layerbuild",
        env!("CARGO_PKG_VERSION"),
        None,
    );
    Tools::Object {
        services: None,
        components: Some(Components(vec![me])),
    }
}

fn layer_component(layer: &LayerId) -> Component {
    let mut b = purl::GenericPurlBuilder::new("generic".to_string(), layer.name.as_str());
    if let Some(v) = &layer.version {
        b = b.with_version(v.as_str());
    }
    let purl = match &layer.arch {
        Some(arch) => b
            .with_qualifier("arch", arch.as_str())
            .ok()
            .and_then(|b| cdx_purl(b.build())),
        None => cdx_purl(b.build()),
    };
    let bom_ref = purl
        .as_ref()
        .map_or_else(|| format!("layer:{}", layer.name), |p| p.to_string());
    let mut c = Component::new(Classification::Library, &layer.name, "", Some(bom_ref));
    c.version = layer.version.as_deref().map(Into::into);
    c.purl = purl;
    c.hashes = sha256(&layer.zip_sha256);
    let mut p = Vec::new();
    if let Some(arch) = &layer.arch {
        p.push((prop::ARCH, arch.clone()));
    }
    if !layer.runtimes.is_empty() {
        p.push((prop::RUNTIMES, layer.runtimes.join(",")));
    }
    c.properties = props(p);
    c
}

fn python_component(d: &PythonDist) -> Component {
    let purl = purl::PurlBuilder::new(purl::PackageType::PyPI, d.name.as_str())
        .with_version(d.version.as_str())
        .build();
    let bom_ref = match &d.wheel {
        Some(w) => format!("wheel:{}", w.file),
        None => format!("python:{}", d.dist_infos.first().map(String::as_str).unwrap_or(&d.name)),
    };
    let mut c = Component::new(Classification::Library, &d.name, &d.version, Some(bom_ref));
    c.purl = cdx_purl(purl);
    c.hashes = d.wheel.as_ref().and_then(|w| sha256(&w.sha256));
    if !d.licenses.is_empty() {
        c.licenses = Some(Licenses(d.licenses.iter().map(license).collect()));
    }
    let runtimes = if d.runtimes.is_empty() {
        "any".to_string()
    } else {
        d.runtimes.join(",")
    };
    let mut p = vec![(prop::PY_RUNTIMES, runtimes), (prop::PY_ARCH, d.arch.clone())];
    p.extend(d.dist_infos.iter().map(|i| (prop::PY_DIST_INFO, i.clone())));
    if let Some(w) = &d.wheel {
        p.push((prop::PY_WHEEL, w.file.clone()));
    }
    c.properties = props(p);
    c
}

fn license(l: &LicenseRef) -> LicenseChoice {
    match l {
        LicenseRef::Id(id) => LicenseChoice::License(License::license_id(id)),
        LicenseRef::Expression(e) => LicenseChoice::Expression(SpdxExpression::new(e)),
        LicenseRef::Name(n) => LicenseChoice::License(License::named_license(n)),
    }
}

/// A program, named by its Go main module when it has build info, and the refs of the
/// modules linked into it (added to `modules`, shared between programs).
fn program_component(p: &Program, modules: &mut BTreeMap<String, Component>) -> (Component, Vec<String>) {
    let mut c = Component::new(Classification::Application, &p.path, "", Some(file_ref(&p.path)));
    c.version = None;
    c.hashes = sha256(&p.sha256);
    let mut props_of = vec![(prop::PATH, p.path.clone())];
    let mut deps = Vec::new();
    match &p.go {
        Ok(info) => {
            if let Some(main) = &info.main {
                c.name = main.path.as_str().into();
                c.version = Some(main.version.as_str().into());
                c.purl = golang_purl(main);
            }
            props_of.push((prop::GO_VERSION, info.go_version.clone()));
            if let Some(pkg) = &info.path {
                props_of.push((prop::GO_PACKAGE, pkg.clone()));
            }
            for (k, v) in &info.settings {
                props_of.push((prop::GO_BUILD, format!("{k}={v}")));
            }
            let linked = info
                .deps
                .iter()
                .map(module_component)
                .chain([stdlib_component(&info.go_version)]);
            for (r, component) in linked {
                modules.entry(r.clone()).or_insert(component);
                deps.push(r);
            }
        }
        Err(e) => props_of.push((prop::GO_NO_INFO, e.to_string())),
    }
    deps.sort();
    deps.dedup();
    c.properties = props(props_of);
    (c, deps)
}

/// The module actually linked in; a replacement names the module it replaced in a property.
fn module_component(m: &Module) -> (String, Component) {
    let used = m.effective();
    let r = format!("go:{}@{}", used.path, used.version);
    let mut c = Component::new(Classification::Library, &used.path, &used.version, Some(r.clone()));
    if used.version.is_empty() {
        c.version = None;
    }
    c.purl = golang_purl(used);
    c.hashes = used
        .sum
        .as_deref()
        .and_then(gobuild::h1_sha256)
        .and_then(|h| sha256(&h));
    if used != m {
        c.properties = props(vec![(prop::GO_REPLACES, format!("{}@{}", m.path, m.version))]);
    }
    (r, c)
}

/// Go's standard library as the module `stdlib`, the way Go's vulnerability database and
/// scanners such as syft name it: version `go1.26.8`, purl version `1.26.8`.
fn stdlib_component(go_version: &str) -> (String, Component) {
    // `go1.26.8 X:boringcrypto`: experiments follow the version.
    let version = go_version.split_whitespace().next().unwrap_or(go_version);
    let r = format!("go:stdlib@{version}");
    let mut c = Component::new(Classification::Library, "stdlib", version, Some(r.clone()));
    let purl = purl::PurlBuilder::new(purl::PackageType::Golang, "stdlib")
        .with_version(version.strip_prefix("go").unwrap_or(version))
        .build();
    c.purl = cdx_purl(purl);
    (r, c)
}

/// `pkg:golang/github.com/a/b@v1.2.3`, without version for the one Go makes up for a local
/// build (`(devel)`); none for a local folder (`../x`), which no registry knows.
fn golang_purl(m: &Module) -> Option<Purl> {
    if m.path.starts_with('.') || m.path.starts_with('/') {
        return None;
    }
    let (namespace, name) = m.path.rsplit_once('/').unwrap_or(("", m.path.as_str()));
    let mut b = purl::PurlBuilder::new(purl::PackageType::Golang, name).with_namespace(namespace);
    if !m.version.is_empty() && m.version != "(devel)" {
        b = b.with_version(m.version.as_str());
    }
    cdx_purl(b.build())
}

/// The purl the builder made, in the document's type; none when the name cannot make one (a
/// zip read on its own may hold anything).
fn cdx_purl<T, E>(built: Result<purl::GenericPurl<T>, E>) -> Option<Purl>
where
    T: purl::PurlShape,
{
    built.ok()?.to_string().parse().ok()
}

fn file_ref(path: &str) -> String {
    format!("file:{path}")
}

fn sha256(hex: &str) -> Option<Hashes> {
    Some(Hashes(vec![Hash {
        alg: HashAlgorithm::SHA_256,
        content: HashValue(hex.to_string()),
    }]))
}

fn props(p: Vec<(&str, String)>) -> Option<Properties> {
    (!p.is_empty()).then(|| Properties(p.into_iter().map(|(k, v)| Property::new(k, &v)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, version: &str) -> Module {
        Module {
            path: path.into(),
            version: version.into(),
            sum: None,
            replace: None,
        }
    }

    #[test]
    fn purls_for_what_registries_know_and_none_for_the_rest() {
        let purl = |m: &Module| golang_purl(m).map(|p| p.to_string());
        assert_eq!(
            purl(&module("github.com/a/b", "v1.2.3")).as_deref(),
            Some("pkg:golang/github.com/a/b@v1.2.3")
        );
        assert_eq!(
            purl(&module("example.com/app", "(devel)")).as_deref(),
            Some("pkg:golang/example.com/app")
        );
        assert_eq!(purl(&module("../local", "")), None);
        assert_eq!(purl(&module("", "v1")), None, "no name, no purl, no failure");
        let (r, stdlib) = stdlib_component("go1.26.8 X:boringcrypto");
        assert_eq!(r, "go:stdlib@go1.26.8");
        assert_eq!(stdlib.purl.unwrap().to_string(), "pkg:golang/stdlib@1.26.8");
    }
}
