"""deploy/: what can be checked of the multi-machine deployment without Docker (containers cannot
run here). The compose file is interpolated as docker compose does, from `.env.example` with test
values for its empty secrets, and then:

- every `walkout` command line in it is accepted by walkout's own argument parser, its `--bus` by
  NatsSettings, its cameras are the example store's, each node has an outbox volume of its own;
- every environment variable a walkout service gets is a setting of `walkout serve`, and together
  they pass ApiSettings (production, the entry key) and point at the compose's PostgreSQL;
- the NATS config is accepted by `nats-server -t` with each server's environment from compose;
- the nginx config passes `nginx -t`, proxies to the compose's `walkout serve` services, names
  only routes the app has, exposes only the gate routes on 443, and limits bodies as walkout does;
- no file in deploy/ holds a password, key or credential.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from paths import SAMPLES

from store_runtime.api.settings import ENV_VARS, ApiSettings
from store_runtime.bus.nats import NatsSettings
from store_runtime.cli import build_parser
from store_runtime.config import load_store

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
NGINX = DEPLOY / "proxy" / "nginx.conf"
NATS_CONF = DEPLOY / "nats" / "nats.conf"
# The compose's example cameras (node-gate, node-aisle) are those of the sample store.
EXAMPLE_STORE = SAMPLES / "02-pick-put" / "store.yaml"
# What the gates call (SPEC section 7): the only routes on the proxy's public port.
GATE_ROUTES = {("POST", "/v1/entries"), ("POST", "/v1/exits"), ("GET", "/v1/sessions/{session}"),
               ("GET", "/v1/receipts/{session}")}


# --------------------------------------------------------------------------------------------
# docker compose's interpolation, from .env.example

def env_example() -> dict[str, str]:
    values = {}
    for n, line in enumerate((DEPLOY / ".env.example").read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f".env.example line {n}: expected KEY=VALUE"
            values[key] = value
    return values


def test_environment() -> dict[str, str]:
    """.env.example with each empty value (a secret the installer fills in) given a test value."""
    filled = {}
    for key, value in env_example().items():
        if value:
            filled[key] = value
        elif key == "WALKOUT_ENTRY_KEY":
            filled[key] = secrets.token_hex(32)
        elif key.endswith("PASSWORD"):  # starting with a letter, as .env.example says
            filled[key] = "p" + secrets.token_hex(12)
        elif re.fullmatch(r"CAMERA_[A-Z0-9_]+_URL", key):
            filled[key] = f"rtsp://viewer:{secrets.token_hex(6)}@10.0.0.11/stream1"
        else:
            raise AssertionError(f".env.example: {key} is empty and this test has no value for it: give it one here")
    return filled


test_environment.__test__ = False  # a helper, not a test

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^${}]*))?\}")


def interpolate(text: str, env: dict[str, str], used: set[str]) -> str:
    """${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} (innermost first, as
    defaults may hold variables) and $$. A variable neither set nor defaulted is an error: docker
    compose would put an empty string there, which is never what is meant."""
    text = text.replace("$$", "\0")
    while True:
        match = _VAR.search(text)
        if match is None:
            break
        name, op, arg = match[1], match[2], match[3]
        used.add(name)
        value = env.get(name)
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            value = arg
        elif value is None or (op == ":?" and value == ""):
            raise AssertionError(f"compose.yaml: ${{{name}}} is not in .env.example"
                                 + (f" (its message: {arg})" if op in (":?", "?") else ""))
        text = text[:match.start()] + value + text[match.end():]
    assert not re.search(r"\$[A-Za-z_{]", text), f"compose.yaml: an unbraced or malformed variable in {text!r}"
    return text.replace("\0", "$")


def _walk(node: Any, env: dict[str, str], used: set[str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, used)
    if isinstance(node, list):
        return [_walk(item, env, used) for item in node]
    if isinstance(node, dict):
        return {key: _walk(value, env, used) for key, value in node.items()}
    return node


def load_compose(env: dict[str, str] | None = None) -> tuple[dict, dict[str, str], set[str]]:
    env = test_environment() if env is None else env
    used: set[str] = set()
    compose = _walk(yaml.safe_load(COMPOSE.read_text()), env, used)
    return compose, env, used


def walkout_services(compose: dict, env: dict[str, str]) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if s.get("image") == env["WALKOUT_IMAGE"]}


def parsed(service: dict) -> Any:
    command = service["command"]
    assert isinstance(command, list) and command[0] == "walkout", f"expected an exec-form walkout command: {command}"
    try:
        return build_parser().parse_args(command[1:])
    except SystemExit:  # argparse has printed what it refused
        raise AssertionError(f"walkout refuses the command line {command}") from None


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source (a named volume, or a host path), for short-syntax volumes."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


# --------------------------------------------------------------------------------------------
# compose.yaml


def test_every_variable_of_compose_is_in_env_example_and_every_example_is_used() -> None:
    compose, env, used = load_compose()
    assert set(compose) == {"name", "x-walkout", "x-serve", "x-node", "x-nats", "x-nats-urls", "services",
                            "volumes", "secrets"}
    assert set(env_example()) - used == set(), "variables in .env.example that compose.yaml never uses"
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):  # a secret left empty stops compose
        load_compose({**test_environment(), "POSTGRES_PASSWORD": ""})


def test_every_walkout_command_line_is_accepted_by_walkout() -> None:
    compose, env, _ = load_compose()
    services = walkout_services(compose, env)
    commands = {name: parsed(service) for name, service in services.items()}
    serves = {name: a for name, a in commands.items() if a.command == "serve"}
    nodes = {name: a for name, a in commands.items() if a.command == "node"}
    assert len(serves) == 2 and nodes and len(serves) + len(nodes) == len(services)
    store = load_store(EXAMPLE_STORE).config
    for name, args in serves.items():
        assert args.host == "0.0.0.0" and args.port == 8000, name
        assert Path(args.store).parent.as_posix() in mounts(services[name]), f"{name}: --store is not mounted"
        NatsSettings(url=args.bus, store_id=store.store_id)
        assert len(args.bus.split(",")) == 3, f"{name}: --bus should name the three brokers"
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    cameras = [args.camera for args in nodes.values()]
    assert sorted(cameras) == sorted(set(cameras)) and set(cameras) <= set(store.cameras), cameras
    outboxes = set()
    for name, args in nodes.items():
        assert services[name]["profiles"] == ["cameras"], name
        assert args.source.startswith("rtsp://") and args.out == Path("/dev/null"), name
        NatsSettings(url=args.bus, store_id=store.store_id)
        assert Path(args.store).parent.as_posix() in mounts(services[name]), f"{name}: --store is not mounted"
        volume = mounts(services[name]).get(Path(args.outbox).parent.as_posix())
        assert volume in compose["volumes"], f"{name}: its outbox folder is not on a named volume"
        outboxes.add(volume)
    assert len(outboxes) == len(nodes), "two nodes share an outbox volume"


def test_walkout_services_get_only_settings_walkout_serve_knows() -> None:
    compose, env, _ = load_compose()
    postgres = compose["services"]["postgres"]["environment"]
    for name, service in walkout_services(compose, env).items():
        environment = service.get("environment", {})
        unknown = set(environment) - set(ENV_VARS.values())
        assert not unknown, f"{name}: settings walkout serve does not know: {unknown}"
        if parsed(service).command != "serve":
            continue
        settings = ApiSettings.from_env(environ=environment, store=Path(parsed(service).store))
        assert settings.environment == "production" and settings.entry_key is not None
        from sqlalchemy.engine import make_url

        url = make_url(settings.db_url)
        assert (url.get_backend_name(), url.host, url.port) == ("postgresql", "postgres", 5432), name
        assert (url.username, url.password, url.database) == (postgres["POSTGRES_USER"],
                                                              postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])


def test_database_brokers_and_outboxes_keep_their_data_on_volumes() -> None:
    compose, _, _ = load_compose()
    services = compose["services"]
    assert mounts(services["postgres"])["/var/lib/postgresql/data"] in compose["volumes"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    store_dir = re.search(r"store_dir:\s*(\S+)", NATS_CONF.read_text())[1]
    brokers = [name for name in services if name.startswith("nats-")]
    assert len(brokers) == 3
    for name in brokers:
        volume_at = mounts(services[name])
        assert any(store_dir.startswith(target + "/") and source in compose["volumes"]
                   for target, source in volume_at.items()), f"{name}: JetStream's {store_dir} is not on a volume"
        assert volume_at["/etc/nats/nats.conf"] == "./nats/nats.conf"


# --------------------------------------------------------------------------------------------
# NATS


def test_nats_config_is_accepted_by_nats_server_for_each_broker(tmp_path: Path) -> None:
    server = shutil.which("nats-server")
    if server is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    compose, _, _ = load_compose()
    brokers = {name: s for name, s in compose["services"].items() if name.startswith("nats-")}
    names = {s["environment"]["NATS_SERVER_NAME"] for s in brokers.values()}
    assert names == set(brokers)
    for name, service in brokers.items():
        environment = service["environment"]
        for n in (1, 2, 3):  # every route names a broker of the compose, at the cluster port
            route = re.fullmatch(r"nats-route://route:[^@]+@(nats-\d):6222", environment[f"NATS_ROUTE_{n}"])
            assert route and route[1] in brokers, environment[f"NATS_ROUTE_{n}"]
        done = subprocess.run([server, "-c", str(NATS_CONF), "-t"], env={"PATH": os.environ["PATH"], **environment},
                              capture_output=True, text=True, timeout=30, cwd=tmp_path)
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    # -t resolves the variables: a password that starts with a digit is read as a number and refused
    # (why .env.example asks for a letter first), and a server given no cluster password is refused.
    environment = {**next(iter(brokers.values()))["environment"], "NATS_PASSWORD": "8e3" + secrets.token_hex(8)}
    done = subprocess.run([server, "-c", str(NATS_CONF), "-t"], env={"PATH": os.environ["PATH"], **environment},
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode != 0 and "NATS_PASSWORD" in done.stdout + done.stderr
    environment = {k: v for k, v in next(iter(brokers.values()))["environment"].items() if k != "NATS_CLUSTER_PASSWORD"}
    done = subprocess.run([server, "-c", str(NATS_CONF), "-t"], env={"PATH": os.environ["PATH"], **environment},
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode != 0 and "NATS_CLUSTER_PASSWORD" in done.stdout + done.stderr


# --------------------------------------------------------------------------------------------
# nginx


def nginx_blocks(text: str) -> list[tuple[str, str]]:
    """(header, body) of every `server { ... }` block, comments removed."""
    text = re.sub(r"#[^\n]*", "", text)
    blocks = []
    for match in re.finditer(r"\bserver\s*\{", text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        blocks.append((match.group(0), text[match.end():i - 1]))
    return blocks


def locations(body: str) -> list[tuple[str, str, str]]:
    """(modifier, path, block) of each location: modifier '=', '~' or '' (prefix)."""
    return [(m[1] or "", m[2], m[3]) for m in re.finditer(r"location\s+(=|~)?\s*(\S+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}",
                                                           body)]


def app_routes() -> set[tuple[str, str]]:
    """(method, path template) of every operation in walkout serve's API document."""
    from store_runtime.api import create_app

    document = create_app(ApiSettings(store=EXAMPLE_STORE)).openapi()
    return {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}


def _example(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "s-0001", template)


def served_by(modifier: str, path: str, routes: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The app's routes that a location passes on."""
    if modifier == "=":
        return {r for r in routes if _example(r[1]) == path or r[1] == path}
    if modifier == "~":
        return {r for r in routes if re.search(path, _example(r[1]))}
    return {r for r in routes if _example(r[1]).startswith(path)}


def test_proxy_names_only_routes_the_app_has_and_only_gate_routes_are_public() -> None:
    routes = app_routes()
    assert routes >= GATE_ROUTES
    servers = {re.search(r"listen\s+(\d+)", body)[1]: body for _, body in nginx_blocks(NGINX.read_text())}
    assert set(servers) == {"443", "8443"}, "the proxy listens on 443 (gates) and 8443 (operators), TLS only"
    for port, body in servers.items():
        assert re.search(rf"listen\s+{port}\s+ssl;", body), port
        for modifier, path, block in locations(body):
            if "proxy_pass" not in block:  # the public port's catch-all
                assert (port, modifier, path) == ("443", "", "/") and "return 404" in block, (port, path)
                continue
            assert "proxy_pass http://walkout_api;" in block, (port, path)
            assert served_by(modifier, path, routes), f"nginx {port}: location {modifier} {path} is no route of the app"
    public = set()
    for modifier, path, block in locations(servers["443"]):
        if "proxy_pass" in block:
            methods = set(re.search(r"limit_except\s+([A-Z ]+)\{", block)[1].split())
            public |= {r for r in served_by(modifier, path, routes) if r[0] in methods}
    assert public == GATE_ROUTES
    assert re.search(r"\bdeny all;", servers["8443"]) and not re.search(r"allow all;", servers["8443"])


def test_proxy_body_limit_and_upstreams_are_walkouts() -> None:
    compose, env, _ = load_compose()
    text = NGINX.read_text()
    limit = re.search(r"client_max_body_size\s+(\d+)k;", text)
    serve = {name: s for name, s in walkout_services(compose, env).items() if parsed(s).command == "serve"}
    for service in serve.values():
        assert int(limit[1]) * 1024 == int(service["environment"]["WALKOUT_MAX_BODY_BYTES"])
    upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", text, flags=re.M)
    assert {(name, int(port)) for name, port in upstreams} == {(name, parsed(s).port) for name, s in serve.items()}
    proxy = compose["services"]["proxy"]
    assert mounts(proxy)["/etc/nginx/nginx.conf"] == "./proxy/nginx.conf"
    for name in proxy["secrets"]:
        assert (DEPLOY / compose["secrets"][name]["file"]).parent.name == "secrets"
        assert f"/run/secrets/{name};" in text


def test_nginx_accepts_the_proxy_config(tmp_path: Path) -> None:
    nginx, openssl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("openssl")
    if not Path(nginx).is_file() or openssl is None:
        pytest.skip("nginx or openssl is not installed (apt-get install nginx)")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=walkout",
                    "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")],
                   check=True, capture_output=True, timeout=60)
    # The certificate is the test's; the replicas' names, which Docker's DNS would resolve, are this machine.
    text = NGINX.read_text().replace("/run/secrets/tls_cert", str(tmp_path / "tls.crt"))
    text = text.replace("/run/secrets/tls_key", str(tmp_path / "tls.key"))
    text = re.sub(r"(^\s*server\s+)serve-\d+(:\d+)", r"\g<1>127.0.0.1\2", text, flags=re.M)
    (tmp_path / "nginx.conf").write_text(text)
    check = [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr",
             "-g", f"pid {tmp_path / 'nginx.pid'};"]
    done = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    (tmp_path / "nginx.conf").write_text(text.replace("proxy_read_timeout", "proxy_reed_timeout"))
    done = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "proxy_reed_timeout" in done.stderr  # nginx -t catches a typo


# --------------------------------------------------------------------------------------------
# Secrets and the image

_SECRET_LITERALS = [
    (re.compile(r"\b[0-9a-fA-F]{64}\b"), "a 64-hex key"),
    (re.compile(r"(?i)password[ \t]*[:=][ \t]*(?![\s$\"?]|$)\S+"), "a password"),
    (re.compile(r"://[^:/@\s\"]+:(?!\$\{|PASSWORD@)[^@\s/\"]+@"), "a password in a URL"),
    (re.compile(r"BEGIN [A-Z ]*PRIVATE KEY"), "a private key"),
    (re.compile(r"\bwo_(gate|node|operator)_"), "a walkout credential"),
]


def secret_literals(text: str) -> list[str]:
    return [f"{what}: {m.group(0)!r}" for pattern, what in _SECRET_LITERALS for m in pattern.finditer(text)]


def test_no_secret_is_written_in_deploy_files() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and not {"secrets", "store", "backups"} & set(p.parts)
             and p.name != ".env"]
    assert {p.name for p in files} >= {"compose.yaml", ".env.example", "nginx.conf", "nats.conf", "Dockerfile"}
    for path in files:
        assert secret_literals(path.read_text()) == [], path
    for planted in ("postgresql://walkout:hunter2@postgres/walkout", "password: hunter2", "WALKOUT_ENTRY_KEY: "
                    + "ab" * 32, "-----BEGIN PRIVATE KEY-----"):
        assert secret_literals(planted), planted  # the scan would see one
    # Every secret of .env.example is left for the installer to fill in.
    assert all(value == "" for key, value in env_example().items() if key.endswith(("PASSWORD", "KEY", "_URL")))
    ignored = subprocess.run(["git", "check-ignore", "deploy/.env", "deploy/secrets/tls.key"], cwd=DEPLOY.parent,
                             capture_output=True, text=True)
    assert ignored.stdout.split() == ["deploy/.env", "deploy/secrets/tls.key"]


def test_the_image_copies_what_exists_and_installs_a_known_extra() -> None:
    import tomllib

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    repo = DEPLOY.parent
    for sources in re.findall(r"^COPY\s+(.+)\s+\S+$", dockerfile, flags=re.M):
        for source in sources.split():
            assert (repo / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    extras = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for wanted in re.findall(r"pip install [^\n]*'\.\[([\w,]+)\]'", dockerfile):
        assert set(wanted.split(",")) <= set(extras), wanted
    assert "-e '.[" in dockerfile  # walkout finds models/ beside its packages: an editable install
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.M)
