"""The engine assembled: a Manager over the real layers. The daemon builds its manager
here, and so do tests that run the API in-process; the manager package itself knows only
the Runtime interface, never which runtime it is given."""

from __future__ import annotations

import os

from mcd.manager import Manager
from mcd.store import Store


def open_manager(root: str, cgroup_parent: str = "mini_container", *, runtime=None,
                 templates=None, cgroups=None, networks=None, on_change=None) -> Manager:
    """A Manager over ROOT with the real layers: the store, a LinuxRuntime (without a fork
    server unless given a runtime that has one), the cgroup driver and the template store
    built on first use."""

    def make_templates():
        # Templates are one-layer images in the manager's image store; the old trees
        # under ROOT/templates stay readable for containers made before the upgrade.
        from mcd.images.templates import TemplateImages
        from mcd.templates import TemplateStore
        return TemplateImages(lambda: m.images, TemplateStore(os.path.join(root, "templates")))

    def make_cgroups():
        from mcd.runtime import cgroups as cgroups_mod
        return cgroups_mod.CgroupManager(parent=cgroup_parent, layout=cgroups_mod.detect())

    if runtime is None:
        from mcd.runtime.linux import LinuxRuntime
        runtime = LinuxRuntime()
    m = Manager(Store(root), runtime, cgroups or make_cgroups, templates or make_templates,
                cgroup_parent=cgroup_parent, on_change=on_change, networks=networks)
    return m
