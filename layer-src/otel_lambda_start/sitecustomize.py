"""The layer's quick start-up: what opentelemetry-instrument's sitecustomize does, at the cost of
what the function uses.

otel-instrument puts this folder first on PYTHONPATH instead of opentelemetry-instrumentation's
auto_instrumentation folder (unless OTEL_LAMBDA_UPSTREAM_START=true). Python then runs this file
at start-up. It does upstream's steps, in upstream's order: load the distro and configure it, run
the configurator (the SDK: providers, exporters, propagators, id generator, resource), run the
pre-instrument hooks, apply every instrumentor entry point not disabled by
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS whose `instruments` requirements are met, then the
post-instrument hooks. Three things differ, none in the telemetry:

- entry points are read once from the dist-info folders on sys.path (index.py's reader) and
  served to every OpenTelemetry lookup during start-up, instead of one scan per lookup (and,
  on contrib 0.41b0, pkg_resources' working set);
- an instrumentor whose library is known by import name is applied when the function first
  imports that library (a post-import hook), with upstream's requirement check then, instead of
  importing the library at start-up to instrument it; a library the function never imports is
  never loaded;
- anything this module does not recognise (a distribution with OpenTelemetry entry points it
  cannot read) makes it run upstream's own initialisation instead.
"""
import logging
import os
import sys

_logger = logging.getLogger("otel_lambda_start")
_HERE = os.path.dirname(os.path.abspath(__file__))

# Distribution (normalised name) -> module whose import means the library is in use. An
# instrumentor whose requirements name a distribution not listed here is applied at start-up,
# as upstream does.
IMPORT_NAMES = {
    "aio-pika": "aio_pika", "aiohttp": "aiohttp", "aiopg": "aiopg", "asgiref": "asgiref",
    "asyncpg": "asyncpg", "boto": "boto", "boto3": "boto3", "botocore": "botocore",
    "cassandra-driver": "cassandra", "celery": "celery", "confluent-kafka": "confluent_kafka",
    "django": "django", "elasticsearch": "elasticsearch", "falcon": "falcon",
    "fastapi": "fastapi", "fastapi-slim": "fastapi", "flask": "flask", "grpcio": "grpc",
    "httpx": "httpx", "jinja2": "jinja2", "kafka-python": "kafka", "kafka-python-ng": "kafka",
    "mysql-connector-python": "mysql.connector", "mysqlclient": "MySQLdb", "pika": "pika",
    "psycopg": "psycopg", "psycopg2": "psycopg2", "psycopg2-binary": "psycopg2",
    "pymemcache": "pymemcache", "pymongo": "pymongo", "pymssql": "pymssql",
    "pymysql": "pymysql", "pyramid": "pyramid", "redis": "redis", "remoulade": "remoulade",
    "requests": "requests", "sqlalchemy": "sqlalchemy", "starlette": "starlette",
    "tornado": "tornado", "tortoise-orm": "tortoise", "urllib3": "urllib3",
}
# Instrumentors with no `instruments` requirement that instrument one module (of the standard
# library): entry point name -> that module.
NO_REQUIREMENT_MODULES = {"sqlite3": "sqlite3"}

DISABLED = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"


def _upstream():
    """Upstream's own start-up, as its sitecustomize would run it."""
    from opentelemetry.instrumentation.auto_instrumentation import sitecustomize  # noqa: F401


def _pythonpath_without_here(path):
    return os.pathsep.join(p for p in path.split(os.pathsep) if p != _HERE)


def _disabled():
    value = os.environ.get(DISABLED, "")
    return [name.strip() for name in value.split(",")] if value else []


def _load_one(entry_point, distro, contrib):
    """Apply one instrumentor as upstream's _load_instrumentors does once its check passed."""
    try:
        distro.load_instrumentor(entry_point, skip_dep_check=True)
        _logger.debug("Instrumented %s", entry_point.name)
    except ImportError as exc:
        if contrib.startswith("0.41"):
            raise
        _logger.debug("Skipping instrumentation %s: %s", entry_point.name, exc)


def _conflict(requirements, contrib):
    """Upstream's requirement check for `instruments` (a conflict, or None)."""
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    plain, any_of = requirements
    if contrib.startswith("0.41"):
        return get_dependency_conflicts(plain)
    return get_dependency_conflicts(plain, any_of)


def _skip(conflict, name):
    log = getattr(conflict, "_log", None)
    if log is not None:
        log(_upstream_logger(), name)
    else:
        _upstream_logger().debug("Skipping instrumentation %s: %s", name, conflict)


def _upstream_logger():
    return logging.getLogger("opentelemetry.instrumentation.auto_instrumentation._load")


def _deferred(entry_point, distro, requirements, contrib, modules):
    """Apply `entry_point` when the first of `modules` is imported."""
    import wrapt

    done = []

    def hook(_module):
        if done:
            return
        done.append(True)
        try:
            conflict = _conflict(requirements, contrib)
            if conflict:
                _skip(conflict, entry_point.name)
                return
            _load_one(entry_point, distro, contrib)
        except Exception:  # an import of the function's must never fail because of us
            _logger.exception("Instrumenting of %s failed", entry_point.name)

    for module in modules:
        wrapt.register_post_import_hook(hook, module)


def _hook_modules(entry_point, requirements):
    """The modules whose import applies `entry_point`, or None to apply it at start-up."""
    plain, any_of = requirements
    names = plain or any_of
    if not names:
        module = NO_REQUIREMENT_MODULES.get(entry_point.name)
        return [module] if module else None
    from otel_lambda_index import requirement_name

    modules = []
    for requirement in names:
        module = IMPORT_NAMES.get(requirement_name(requirement))
        if module is None:
            return None
        if module not in modules:
            modules.append(module)
    return modules


def _load_instrumentors(found, distro, contrib):
    disabled = _disabled()
    for entry_point in found.entry_points("opentelemetry_pre_instrument"):
        entry_point.load()()
    for entry_point in found.entry_points("opentelemetry_instrumentor"):
        if "*" in disabled and not contrib.startswith("0.41"):
            break
        if entry_point.name in disabled:
            _logger.debug("Instrumentation skipped for library %s", entry_point.name)
            continue
        requirements = found.instruments(entry_point)
        modules = _hook_modules(entry_point, requirements)
        if modules is not None:
            _deferred(entry_point, distro, requirements, contrib, modules)
            continue
        conflict = _conflict(requirements, contrib)
        if conflict:
            _skip(conflict, entry_point.name)
            continue
        _load_one(entry_point, distro, contrib)
    for entry_point in found.entry_points("opentelemetry_post_instrument"):
        entry_point.load()()


def _load_distro(found):
    from opentelemetry.instrumentation.distro import BaseDistro, DefaultDistro

    name = os.environ.get("OTEL_PYTHON_DISTRO")
    for entry_point in found.entry_points("opentelemetry_distro"):
        if name is None or name == entry_point.name:
            distro = entry_point.load()()
            if isinstance(distro, BaseDistro):
                return distro
    return DefaultDistro()


def _load_configurator(found, contrib):
    name = os.environ.get("OTEL_PYTHON_CONFIGURATOR")
    configured = None
    for entry_point in found.entry_points("opentelemetry_configurator"):
        if configured is not None:
            _logger.warning("Configuration of %s not loaded, %s already loaded",
                            entry_point.name, configured)
        elif name is None or name == entry_point.name:
            entry_point.load()().configure(auto_instrumentation_version=contrib)
            configured = entry_point.name


def _start(found, contrib):
    distro = _load_distro(found)
    distro.configure()
    _load_configurator(found, contrib)
    _load_instrumentors(found, distro, contrib)


def initialize():
    path = os.environ.get("PYTHONPATH")
    # As upstream: no auto-instrumentation of processes started during start-up; contrib after
    # 0.41b0 gives it back to processes started later.
    if path is not None:
        os.environ["PYTHONPATH"] = _pythonpath_without_here(path)
    import otel_lambda_index as index

    found = index.read(sys.path)
    contrib = found.version("opentelemetry-instrumentation") if found else None
    try:
        if found is None or contrib is None:
            _upstream()
            return
        with index.serving(found):
            _start(found, contrib)
    except Exception:  # pylint: disable=broad-except
        _logger.exception("Failed to auto initialize OpenTelemetry")
    finally:
        if path is not None and contrib and not contrib.startswith("0.41"):
            current = os.environ.get("PYTHONPATH", "")
            if _HERE not in current.split(os.pathsep):
                os.environ["PYTHONPATH"] = _HERE + os.pathsep + current if current else _HERE


initialize()
