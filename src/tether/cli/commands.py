"""The ``tether`` verbs: each command's name and where it lives (imported on first use)."""

from __future__ import annotations

# name -> "module:attribute". Two verbs live outside the cli package and are named here only
# by their path: ``daemon`` (tether.daemon_cli, the one that starts the daemon) and ``lab``
# (tether.lab.cli, optional). The cli package itself imports neither: it is a client of the
# daemon's API (the import contracts in pyproject.toml).
COMMANDS: dict[str, str] = {
    "attach": "tether.cli.containers:attach",
    "container": "tether.cli.containers:container",
    "create": "tether.cli.run:create",
    "daemon": "tether.daemon_cli:daemon",
    "exec": "tether.cli.containers:exec_",
    "image": "tether.cli.images:image",
    "images": "tether.cli.images:ls",
    "import": "tether.cli.images:import_",
    "info": "tether.cli.system:info",
    "inspect": "tether.cli.containers:inspect",
    "kill": "tether.cli.containers:kill",
    "lab": "tether.lab.cli:lab",
    "load": "tether.cli.images:load",
    "logs": "tether.cli.containers:logs",
    "network": "tether.cli.network:network",
    "path": "tether.cli.topology:path",
    "port": "tether.cli.containers:port",
    "ps": "tether.cli.containers:ps",
    "rename": "tether.cli.containers:rename",
    "restart": "tether.cli.containers:restart",
    "rm": "tether.cli.containers:rm",
    "rmi": "tether.cli.images:rm",
    "run": "tether.cli.run:run",
    "start": "tether.cli.containers:start",
    "stop": "tether.cli.containers:stop",
    "topology": "tether.cli.topology:topology",
    "update": "tether.cli.containers:update",
    "version": "tether.cli.system:version",
    "wait": "tether.cli.containers:wait",
}
OPTIONAL = frozenset({"lab"})
