"""A small CNI caller: runs the plugins of one network configuration list as the CNI
specification (1.0.0, section 3) says. No kernel knowledge and no mcd state here.

- Each plugin is an executable named by its ``type``, looked up in ``CNI_PATH``.
- Its parameters travel in the environment: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
  CNI_IFNAME, CNI_ARGS, CNI_PATH.
- Its configuration travels on stdin: the plugin's object from the list, plus the list's
  ``name`` and ``cniVersion``, plus ``runtimeConfig`` holding exactly the capabilities the
  plugin declares in ``capabilities`` and the runtime has values for (portMappings, ips,
  mac...), plus ``prevResult``.
- ADD runs the plugins in order, each given the previous one's result; the last result
  is the attachment's result. DEL runs them in reverse, each given the result stored from
  ADD (DEL must succeed when things are already gone). CHECK runs in order with the
  stored result, unless the list says ``disableCheck``.
- A failing plugin exits non-zero and prints ``{"code", "msg", "details"}``: that becomes
  one line (a SetupError, step "network") naming the network, the plugin and the command.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field

from mcd.errors import MCError, SetupError

log = logging.getLogger("mcd.network")

DEFAULT_CNI_PATH = ("/usr/lib/cni", "/opt/cni/bin")
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0")
ADD, DEL, CHECK, VERSION = "ADD", "DEL", "CHECK", "VERSION"

# Codes 1-99 are the specification's own (section "Error").
WELL_KNOWN = {1: "incompatible CNI version", 2: "unsupported field in network configuration",
              3: "container unknown or does not exist", 4: "invalid environment variables",
              5: "I/O failure", 6: "failed to decode content", 7: "invalid network config",
              11: "try again later"}


# A plugin's failure is a failed setup step (the closed error vocabulary of mcwire has no
# class per subsystem): its details say which network, plugin, command and CNI code.
CNIError = SetupError


def cni_error(message: str, *, code: int | None = None, plugin: str | None = None,
              network: str | None = None, command: str | None = None) -> SetupError:
    """``network NAME: plugin TYPE: ADD: message (CNI error N: meaning)`` as one error."""
    details = {k: v for k, v in (("network", network), ("plugin", plugin), ("command", command),
                                 ("cni_code", code)) if v is not None}
    return SetupError(message, step="network", details=details)


@dataclass
class ConfList:
    """A network configuration list (the JSON of a .conflist file)."""
    name: str
    cni_version: str
    plugins: list
    disable_check: bool = False
    raw: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, data, where: str = "network config") -> "ConfList":
        if not isinstance(data, dict):
            raise MCError(f"{where}: expected a JSON object", step="network config")
        name, version, plugins = data.get("name"), data.get("cniVersion"), data.get("plugins")
        if not isinstance(name, str) or not name:
            raise MCError(f"{where}: 'name' is missing", step="network config")
        if not isinstance(version, str) or not version:
            raise MCError(f"{where}: network {name}: 'cniVersion' is missing", step="network config")
        if not isinstance(plugins, list) or not plugins:
            raise MCError(f"{where}: network {name}: 'plugins' must be a non-empty list",
                          step="network config")
        for i, p in enumerate(plugins):
            if not isinstance(p, dict) or not isinstance(p.get("type"), str) or not p["type"] \
                    or "/" in p["type"]:
                raise MCError(f"{where}: network {name}: plugins[{i}] has no valid 'type'",
                              step="network config")
        return cls(name, version, plugins, bool(data.get("disableCheck")), data)

    def to_dict(self) -> dict:
        return self.raw or {"cniVersion": self.cni_version, "name": self.name,
                            "plugins": self.plugins}


@dataclass
class Attachment:
    """What identifies one container's attachment to one network (the spec's
    'attachment parameters'): the same values must be given to ADD, CHECK and DEL."""
    container_id: str
    netns: str
    ifname: str = "eth0"
    args: list = field(default_factory=list)           # CNI_ARGS pairs (K, V)
    capability_args: dict = field(default_factory=dict)  # portMappings, ips, mac...


def plugin_config(conf: ConfList, plugin: dict, att: Attachment, prev: dict | None) -> dict:
    """The stdin of one plugin (spec section 3, 'Deriving execution configuration')."""
    cfg = dict(plugin)
    cfg["name"] = conf.name
    cfg["cniVersion"] = conf.cni_version
    caps = plugin.get("capabilities")
    runtime = {}
    if isinstance(caps, dict):
        for key, enabled in caps.items():
            if enabled and key in att.capability_args:
                runtime[key] = att.capability_args[key]
    cfg.pop("runtimeConfig", None)
    if runtime:
        cfg["runtimeConfig"] = runtime
    cfg.pop("prevResult", None)
    if prev is not None:
        cfg["prevResult"] = prev
    return cfg


class Caller:
    """Runs plugins. ``path`` is CNI_PATH (the directories searched, in order)."""

    def __init__(self, path=DEFAULT_CNI_PATH, timeout: float = 60.0, environ=None):
        self.path = [p for p in path if p]
        self.timeout = timeout
        self.environ = dict(os.environ if environ is None else environ)

    def find(self, plugin_type: str) -> str | None:
        for d in self.path:
            exe = os.path.join(d, plugin_type)
            if os.access(exe, os.X_OK) and os.path.isfile(exe):
                return exe
        return None

    def _env(self, command: str, att: Attachment | None) -> dict:
        env = {k: v for k, v in self.environ.items() if not k.startswith("CNI_")}
        env["CNI_COMMAND"] = command
        env["CNI_PATH"] = ":".join(self.path)
        if att is not None:
            env["CNI_CONTAINERID"] = att.container_id
            env["CNI_NETNS"] = att.netns
            env["CNI_IFNAME"] = att.ifname
            if att.args:
                env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in att.args)
        return env

    def exec_plugin(self, command: str, plugin_type: str, config: dict,
                    att: Attachment | None, network: str) -> dict | None:
        """Run one plugin; its stdout parsed (None when it printed nothing, as DEL may)."""
        where = f"network {network}: plugin {plugin_type}: {command}"
        exe = self.find(plugin_type)
        if exe is None:
            raise cni_error(f"{where}: no such plugin in {':'.join(self.path)} "
                           f"(is containernetworking-plugins installed?)",
                           plugin=plugin_type, network=network, command=command)
        try:
            proc = subprocess.run([exe], input=json.dumps(config).encode(), capture_output=True,
                                  env=self._env(command, att), timeout=self.timeout,
                                  close_fds=True)
        except subprocess.TimeoutExpired:
            raise cni_error(f"{where}: no answer in {self.timeout:g} s", plugin=plugin_type,
                           network=network, command=command) from None
        except OSError as err:
            raise cni_error(f"{where}: {exe}: {err.strerror}", plugin=plugin_type,
                           network=network, command=command) from err
        out = proc.stdout.strip()
        parsed = None
        if out:
            try:
                parsed = json.loads(out)
            except ValueError:
                parsed = None
        if proc.returncode != 0:
            raise error_from_output(where, proc.returncode, parsed, proc.stderr,
                                    plugin=plugin_type, network=network, command=command)
        if out and not isinstance(parsed, dict):
            raise cni_error(f"{where}: the plugin printed no JSON result: {out[:120]!r}",
                           plugin=plugin_type, network=network, command=command)
        return parsed

    # -- the operations on a list

    def add(self, conf: ConfList, att: Attachment, checkpoint=None) -> dict:
        """ADD every plugin in order. ``checkpoint(result)`` is called after each plugin
        with the result so far, so a caller killed mid-way can still DEL with the most
        complete prevResult it had. On failure the plugins already run are DELeted
        (in reverse, with the result so far) before the error is raised."""
        prev = None
        done = 0
        try:
            for plugin in conf.plugins:
                result = self.exec_plugin(ADD, plugin["type"],
                                          plugin_config(conf, plugin, att, prev), att, conf.name)
                done += 1
                if result is not None:
                    prev = result
                if checkpoint is not None:
                    checkpoint(prev)
        except BaseException:
            try:
                # DEL the whole list: a plugin that failed half-way may have left something,
                # and DEL of what never happened is a no-op by the specification.
                self.delete(conf, att, prev)
            except CNIError:
                pass
            raise
        return prev or {"cniVersion": conf.cni_version}

    def delete(self, conf: ConfList, att: Attachment, prev: dict | None) -> None:
        """DEL every plugin in reverse order with the stored result. Every plugin is
        tried; the first error is raised after the others ran."""
        first = None
        for plugin in reversed(conf.plugins):
            try:
                self.exec_plugin(DEL, plugin["type"], plugin_config(conf, plugin, att, prev),
                                 att, conf.name)
            except CNIError as err:
                first = first or err
        if first is not None:
            raise first

    def check(self, conf: ConfList, att: Attachment, prev: dict) -> None:
        if conf.disable_check or _version_tuple(conf.cni_version) < (0, 4, 0):
            return
        for plugin in conf.plugins:
            try:
                self.exec_plugin(CHECK, plugin["type"], plugin_config(conf, plugin, att, prev),
                                 att, conf.name)
            except SetupError as err:
                if not known_false_check(plugin["type"], str(err), prev):
                    raise
                log.debug("network %s: %s (a known plugin defect, the CHECK counts as "
                          "passed)", conf.name, err)

    def version(self, plugin_type: str) -> dict:
        return self.exec_plugin(VERSION, plugin_type, {"cniVersion": SUPPORTED_VERSIONS[-1]},
                                None, "-") or {}


def known_false_check(plugin_type: str, message: str, prev: dict | None) -> bool:
    """A CHECK failure that a plugin is known to report wrongly. portmap before 1.2.0
    (Debian 12 ships 1.1.1) checks its ip6tables chain for every container, and fails for
    one with no IPv6 address, whose rules were never made in ip6tables
    (containernetworking/plugins#819): a false alarm for every IPv4 container that
    publishes a port."""
    if plugin_type != "portmap" or "could not check ipv6 dnat" not in message:
        return False
    ips = (prev or {}).get("ips") or []
    return not any(":" in str(ip.get("address", "")) for ip in ips if isinstance(ip, dict))


def _version_tuple(v: str) -> tuple:
    try:
        return tuple(int(x) for x in v.split(".")[:3])
    except ValueError:
        return (0,)


def error_from_output(where: str, returncode: int, parsed, stderr: bytes, **kw) -> SetupError:
    """The plugin's error JSON (``code``, ``msg``, ``details``) as one line."""
    code = msg = details = None
    if isinstance(parsed, dict):
        code, msg, details = parsed.get("code"), parsed.get("msg"), parsed.get("details")
    if not msg:
        last = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
        msg = last[-1].strip() if last else f"exited with status {returncode}"
    text = " ".join(str(msg).split())
    if details:
        text += ": " + " ".join(str(details).split())
    if isinstance(code, int):
        known = WELL_KNOWN.get(code)
        text += f" (CNI error {code}{': ' + known if known else ''})"
    return cni_error(f"{where}: {text}", code=code if isinstance(code, int) else None, **kw)
