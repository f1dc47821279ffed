"""docker-compose.yml, the Dockerfile and .env.example, checked statically (Docker does not run here).

The Compose Specification's schema says the file is well formed; the rest says it runs Herald: every
Herald command exists in the `herald` CLI with the options given, every HERALD_* variable is one
foundation/settings.py reads, the services that must be healthy have healthchecks, workers scale, and
the image installs the project and does not run as root.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import typer.main
import yaml

from foundation.db import database_url
from foundation.settings import PROJECT_ROOT
from foundation.smtp_url import parse_smtp_url

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
SETTINGS = PROJECT_ROOT / "foundation" / "settings.py"
PRODUCTION = ("worker", "beat", "web")
# Fixed by the image (Dockerfile ENV) and the mounts, so deliberately not passed from the host.
IMAGE_PATHS = {"HERALD_CONTENT_DIR", "HERALD_TEMPLATES_DIR", "HERALD_DATA_DIR", "HERALD_OUTBOX_DIR"}
SECRETS = {"HERALD_SECRET_KEY": "k" * 43, "HERALD_API_TOKEN": "t" * 43}
# Click's error base class, whether Typer uses click or its own vendored copy (typer._click).
ClickException = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


def _validator() -> jsonschema.Draft7Validator:
    """The schema says draft-07 (by an https address jsonschema does not know, hence explicit)."""
    return jsonschema.Draft7Validator(json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text()))


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


# ---- Compose interpolation, as the specification describes it -------------------------------------

class Refused(Exception):
    """`${VAR:?message}` met an unset (or empty) VAR: compose stops with the message."""


_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")


def interpolate(text: str, env: dict[str, str]) -> str:
    """`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`, `${VAR:+x}`,
    `${VAR+x}`, nested, and `$$` for a literal dollar."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            depth, end = 1, i + 2
            while depth:
                if end >= len(text):
                    raise ValueError(f"unclosed ${{ in {text!r}")
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            out.append(_expression(text[i + 2:end - 1], env))
            i = end
        elif match := _NAME.match(text, i + 1):
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _expression(expression: str, env: dict[str, str]) -> str:
    match = re.fullmatch(r"([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[-?+])(.*))?", expression, re.DOTALL)
    if match is None:
        raise ValueError(f"${{{expression}}} is not an interpolation Compose understands")
    name, operator, argument = match.groups()
    value = env.get(name)
    if operator is None:
        return value or ""
    present = value is not None and (value != "" or not operator.startswith(":"))
    if operator.endswith("-"):
        return value if present else interpolate(argument, env)
    if operator.endswith("?"):
        if not present:
            raise Refused(f"{name}: {interpolate(argument, env)}")
        return value
    return interpolate(argument, env) if present else ""


def resolved(node: Any, env: dict[str, str]) -> Any:
    """The loaded file with every string value interpolated (keys are not, as in Compose)."""
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def test_interpolation_follows_the_specification():
    env = {"SET": "value", "EMPTY": ""}
    assert interpolate("${SET} $SET ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET", env) == "value value d  d $SET"
    assert interpolate("${UNSET:-${ALSO:-${SET}}}@${SET:+yes}${EMPTY+set}", env) == "value@yesset"
    with pytest.raises(Refused, match="say so"):
        interpolate("${EMPTY:?say so}", env)
    assert interpolate("${EMPTY?unused}", env) == ""


# ---- the `herald` CLI, as Typer builds it ------------------------------------------------------------

class NotACommand(Exception):
    """A compose `command` that `herald` would reject."""


def herald_cli() -> Any:
    """`herald` as the click group Typer builds (a fresh tree each call: tests may alter it)."""
    from worker.cli import app

    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def resolve(words: list[str], cli: Any) -> Any:
    """The click command that `words` runs, its options and arguments parsed as the CLI would."""
    if not words or words[0] != "herald":
        raise NotACommand(f"{words}: a Herald service's command starts with `herald`")
    command = cli
    path, rest = ["herald"], list(words[1:])
    while _is_group(command):
        if not rest or rest[0].startswith("-"):
            raise NotACommand(f"`{' '.join(path)}` needs one of: {', '.join(sorted(command.commands))}")
        name = rest.pop(0)
        if name not in command.commands:
            choices = ", ".join(sorted(command.commands))
            raise NotACommand(f"`{' '.join(path)}` has no command {name!r} (it has {choices})")
        command = command.commands[name]
        path.append(name)
    known = {option for param in command.params for option in (*param.opts, *param.secondary_opts)}
    for word in rest:
        option = word.split("=", 1)[0]
        if option.startswith("-") and option not in known:
            raise NotACommand(f"`{' '.join(path)}` has no option {option} (it has {', '.join(sorted(known))})")
    try:  # values, types (a port that is not a number) and required arguments
        command.make_context(" ".join(path), rest)
    except ClickException as error:
        raise NotACommand(f"`{' '.join(words)}`: {error.format_message()}") from None
    return command


def _words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def _herald_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the Herald image: built from this project, or tagged as x-herald's image."""
    image = compose["x-herald"]["image"]
    return {name: service for name, service in compose["services"].items()
            if "build" in service or service.get("image") == image}


# ---- docker-compose.yml ------------------------------------------------------------------------------

def test_compose_file_follows_the_compose_specification():
    _validator().validate(_compose())
    _validator().validate(resolved(_compose(), SECRETS))


def test_compose_validation_rejects_a_broken_file():
    broken = {"services": {"herald": {"image": "python:3.12-slim", "volumes": "not-a-list", "bogus": 1}}}
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(broken)


def test_the_production_services_are_all_there():
    services = _compose()["services"]
    assert {"redis", "postgres", "mailpit", *PRODUCTION} <= set(services)
    assert services["redis"]["image"].startswith("redis:")
    assert re.fullmatch(r"postgres:1[67](\.\d+)*(-\w+)?", services["postgres"]["image"])
    assert services["mailpit"]["image"].split(":")[0] == "axllent/mailpit"
    assert {str(port).rsplit(":", 1)[-1] for port in services["mailpit"]["ports"]} == {"1025", "8025"}
    assert set(_herald_services(_compose())) >= set(PRODUCTION)


def test_herald_services_share_one_definition():
    """worker, beat and web come from the x-herald anchor: one image, one environment, the same mounts."""
    compose = _compose()
    shared = compose["x-herald"]
    for name in PRODUCTION:
        service = compose["services"][name]
        for key in ("image", "build", "environment", "volumes"):
            assert service[key] == shared[key], f"{name}.{key} differs from x-herald"
    assert COMPOSE.read_text().count("<<: *herald\n") >= len(PRODUCTION)


@pytest.mark.parametrize("name", sorted(_herald_services(_compose())))
def test_every_herald_command_exists_in_the_cli(name: str):
    service = _compose()["services"][name]
    assert "command" in service, f"{name} runs the Herald image without a command"
    resolve(_words(service["command"]), herald_cli())


def test_the_commands_are_the_ones_production_needs():
    services = _compose()["services"]
    assert _words(services["worker"]["command"])[:2] == ["herald", "worker"]
    assert _words(services["beat"]["command"]) == ["herald", "beat"]
    web = _words(services["web"]["command"])
    assert web[:2] == ["herald", "web"]
    context = resolve(web, herald_cli()).make_context("herald web", web[2:])
    assert (context.params["host"], context.params["port"]) == ("0.0.0.0", 8000)


@pytest.mark.parametrize("words", [
    ["python", "-m", "worker.cli", "worker"],  # not the herald command
    ["herald"],  # no command at all
    ["herald", "workers"],  # a renamed or misspelt command
    ["herald", "campaigns"],  # a group without its subcommand
    ["herald", "campaign", "list"],
    ["herald", "campaigns", "lists"],
    ["herald", "web", "--hots", "0.0.0.0"],  # an option the command does not have
    ["herald", "web", "--host=0.0.0.0", "--prot=8000"],
    ["herald", "web", "--port", "eighty"],  # an option value of the wrong type
    ["herald", "status"],  # a required argument missing
    ["herald", "beat", "extra"],  # an argument the command does not take
])
def test_a_command_the_cli_does_not_have_is_rejected(words: list[str]):
    with pytest.raises(NotACommand):
        resolve(words, herald_cli())


@pytest.mark.parametrize("words", [
    ["herald", "campaigns", "list", "--limit", "5"],
    ["herald", "subscribers", "import", "--sample"],
    ["herald", "status", "7", "--no-follow"],
    ["herald", "worker", "--concurrency=4", "--pool", "threads"],
])
def test_a_command_the_cli_has_resolves(words: list[str]):
    resolve(words, herald_cli())


@pytest.mark.parametrize("old", ["worker", "beat", "web"])
def test_renaming_a_cli_command_breaks_the_compose_check(old: str):
    """What the real check does when someone renames `herald worker` (or beat, web) in the code."""
    cli = herald_cli()
    cli.commands[f"{old}-renamed"] = cli.commands.pop(old)
    command = _words(_compose()["services"][old]["command"])
    with pytest.raises(NotACommand, match=f"no command '{old}'"):
        resolve(command, cli)


def test_healthchecks_for_redis_postgres_web_worker_and_beat():
    """Herald's own are `herald health PART` (tests/test_health.py runs exactly these commands)."""
    services = _compose()["services"]
    checks = {name: services[name].get("healthcheck", {}).get("test") for name in ("redis", "postgres", *PRODUCTION)}
    for name, test in checks.items():
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
    assert checks["redis"][1:] == ["redis-cli", "ping"]
    assert "pg_isready" in " ".join(checks["postgres"])
    for name in PRODUCTION:
        assert checks[name][1:] == ["herald", "health", name]
        resolve(checks[name][1:], herald_cli())


def test_workers_scale_with_deploy_replicas():
    worker = resolved(_compose(), SECRETS)["services"]["worker"]
    assert worker["deploy"]["replicas"] == "1"
    assert resolved(_compose(), {**SECRETS, "WORKER_REPLICAS": "4"})["services"]["worker"]["deploy"]["replicas"] == "4"


def test_herald_waits_for_healthy_redis_and_postgres():
    services = _compose()["services"]
    for name in PRODUCTION:
        depends = services[name]["depends_on"]
        for needed in ("redis", "postgres"):
            assert depends[needed]["condition"] == "service_healthy", f"{name} does not wait for {needed}"
    for name in ("worker", "beat"):  # web migrates the database before any other process opens it
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_workers_scale_and_beat_is_one():
    services = _compose()["services"]
    for name in ("worker", "beat"):
        assert "container_name" not in services[name] and "ports" not in services[name], name
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
    assert "container_name" not in services["web"]
    assert any(str(port).split(":")[-1] == "8000" for port in services["web"]["ports"])


def test_web_is_reached_from_the_world_only_through_the_proxy():
    """web's port on loopback at most; the proxy (Caddy) serves HERALD_BASE_URL and hands requests to web."""
    compose = resolved(_compose(), {**SECRETS, "HERALD_BASE_URL": "https://news.example.org"})
    services = compose["services"]
    for port in services["web"].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"web publishes {port} beyond this machine"
    proxy = services["proxy"]
    assert proxy["image"] == "caddy:2"
    assert proxy["command"] == ["caddy", "reverse-proxy", "--from", "https://news.example.org", "--to", "web:8000"]
    assert {str(port) for port in proxy["ports"]} == {"80:80", "443:443"}
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert {"caddy-data:/data", "caddy-config:/config"} <= set(proxy["volumes"]), "certificates survive a restart"
    trial = resolved(_compose(), SECRETS)["services"]["proxy"]["command"]
    assert trial[trial.index("--from") + 1] == "http://localhost:8000", "Herald's own default base URL"


def test_web_believes_forwarded_addresses_from_the_proxy_and_no_one_else():
    compose = resolved(_compose(), SECRETS)
    address = compose["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    [subnet] = [ipaddress.ip_network(pool["subnet"]) for pool in compose["networks"]["default"]["ipam"]["config"]]
    assert ipaddress.ip_address(address) in subnet
    trusted = compose["x-herald"]["environment"]["HERALD_TRUSTED_PROXIES"]
    assert trusted == address, "exactly the proxy's fixed address"
    for name in PRODUCTION:
        assert "networks" not in compose["services"][name], f"{name} is on the file's default network"


def test_content_and_templates_are_mounted_read_only_where_the_image_looks():
    env = _dockerfile_env()
    mounts = _compose()["x-herald"]["volumes"]
    assert f"./content:{env['HERALD_CONTENT_DIR']}:ro" in mounts
    assert f"./templates:{env['HERALD_TEMPLATES_DIR']}:ro" in mounts


def _settings_names() -> set[str]:
    return set(re.findall(r"\"(HERALD_[A-Z0-9_]+)\"", SETTINGS.read_text()))


def test_settings_are_found_in_the_settings_module():
    assert {"HERALD_DATABASE_URL", "HERALD_REDIS_URL", "HERALD_SMTP_URL", "HERALD_SECRET_KEY"} <= _settings_names()


@pytest.mark.parametrize("path", [COMPOSE, DOCKERFILE, ENV_EXAMPLE], ids=lambda path: path.name)
def test_every_herald_variable_is_one_settings_reads(path: Path):
    named = set(re.findall(r"HERALD_[A-Z0-9_]+", path.read_text()))
    assert named, f"{path.name} names no HERALD_* variable"
    unknown = named - _settings_names()
    assert not unknown, f"{path.name} names variables foundation/settings.py never reads: {sorted(unknown)}"


def test_every_setting_can_be_given_to_the_containers():
    """A new HERALD_* setting must be passed in x-herald's environment, or Docker users cannot set it."""
    passed, wanted = set(_compose()["x-herald"]["environment"]), _settings_names() - IMAGE_PATHS
    assert not wanted - passed, f"add {sorted(wanted - passed)} to x-herald's environment in docker-compose.yml"
    assert not passed & IMAGE_PATHS, "the directories are the image's (Dockerfile ENV), not the host's"


def test_compose_refuses_to_start_without_the_secrets():
    for missing in SECRETS:
        with pytest.raises(Refused, match=missing):
            resolved(_compose(), {k: v for k, v in SECRETS.items() if k != missing})
    with pytest.raises(Refused):
        resolved(_compose(), {**SECRETS, "HERALD_SECRET_KEY": ""})


OWN_CREDENTIALS = {"POSTGRES_USER": "news", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "herald_prod"}


@pytest.mark.parametrize("env", [{}, OWN_CREDENTIALS], ids=["defaults", "own-credentials"])
def test_herald_reaches_the_services_of_the_file(env: dict[str, str]):
    compose = resolved(_compose(), {**SECRETS, **env})
    environment = compose["x-herald"]["environment"]
    url = database_url(environment["HERALD_DATABASE_URL"])
    postgres = compose["services"]["postgres"]["environment"]
    assert (url.get_backend_name(), url.host) == ("postgresql", "postgres")
    assert (url.username, url.password, url.database) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"],
                                                          postgres["POSTGRES_DB"])
    assert environment["HERALD_REDIS_URL"] == "redis://redis:6379/0"
    smtp = parse_smtp_url(environment["HERALD_SMTP_URL"])
    assert (smtp.host, smtp.port, smtp.security) == ("mailpit", 1025, "none")
    assert environment["HERALD_SECRET_KEY"] == SECRETS["HERALD_SECRET_KEY"]


def test_the_environment_overrides_the_trial_defaults():
    relay = "smtp://news%40example.org:p%40ss@smtp.example.org:587?security=starttls"
    compose = resolved(_compose(), {**SECRETS, "HERALD_SMTP_URL": relay, "HERALD_REDIS_URL": "redis://10.0.0.5:6379/0"})
    environment = compose["x-herald"]["environment"]
    assert environment["HERALD_SMTP_URL"] == relay and parse_smtp_url(relay).user == "news@example.org"
    assert environment["HERALD_REDIS_URL"] == "redis://10.0.0.5:6379/0"


# ---- Dockerfile, .dockerignore, .env.example -------------------------------------------------------

def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in _instructions():
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(arguments))
    return env


def test_the_image_installs_herald_and_does_not_run_as_root():
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    installs = r"\bpip install (\S+ )*\.(?=[\s;&|]|$)"
    assert any(name == "RUN" and re.search(installs, args) for name, args in instructions), "no `pip install .`"
    users = [args.split()[0] for name, args in instructions if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must end on a non-root USER"
    assert ("WORKDIR", "/app") in instructions
    assert any(name == "RUN" and re.search(r"\bchmod 0?700 data\b", args) for name, args in instructions), (
        "the data folder (database, key, logs) is its owner's only")
    copied = " ".join(args for name, args in instructions if name == "COPY")
    for needed in ("content/", "templates/", "pyproject.toml", "README.md"):
        assert needed in copied, f"the Dockerfile does not copy {needed}"


def test_the_image_has_every_package_the_project_builds():
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    packages = json.loads(re.search(r"packages = (\[.*?\])", pyproject).group(1))
    copied = [args.split()[0].rstrip("/") for name, args in _instructions() if name == "COPY"]
    ignored = DOCKERIGNORE.read_text().split()
    for package in packages:
        assert package in copied, f"the Dockerfile does not copy {package}/"
        assert package not in ignored


def test_the_image_knows_where_content_and_templates_are():
    env = _dockerfile_env()
    assert set(env) >= IMAGE_PATHS
    assert all(env[name].startswith("/app/") for name in IMAGE_PATHS)


def test_the_build_context_leaves_out_secrets_and_local_state():
    ignored = set(DOCKERIGNORE.read_text().split())
    assert {".env", ".git", ".venv", "data", "outbox"} <= ignored


def test_env_example_leaves_the_secrets_to_fill_in():
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                  if line.strip() and not line.startswith("#"))
    assert all(values[name] == "" for name in SECRETS)  # so compose refuses until they are filled in
    compose = resolved(_compose(), {**values, **SECRETS})
    assert database_url(compose["x-herald"]["environment"]["HERALD_DATABASE_URL"]).host == "postgres"


def test_the_readme_triggers_a_campaign_that_exists():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Running in production", 1)[1].split("\n## ", 1)[0]
    item = re.search(r'"item": "([^"]+)"', section).group(1)
    segment = re.search(r'"segment": "([^"]+)"', section).group(1)
    assert (PROJECT_ROOT / "content" / item / "meta.yaml").is_file()
    assert segment in yaml.safe_load((PROJECT_ROOT / "content" / "segments.yaml").read_text())
