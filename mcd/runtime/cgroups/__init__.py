"""The Resource Manager: cgroup v1 and v2 drivers behind one interface.

    layout = cgroups.detect()
    mgr = cgroups.CgroupManager(parent=None, layout=layout)   # None: the default parent
    cg = mgr.create(container_id, resources)

See docs/design.md, "Cgroups", for detection, placement and conversions.
"""

# Loaded on first use (PEP 562): a caller that needs one driver (mcrt opens a v1 or v2
# cgroup by its directories) does not pay for detection, the manager and both drivers.
_EXPORTS = {"Cgroup": "base", "Features": "base", "shares_to_weight": "convert",
            "weight_to_shares": "convert", "Layout": "detection", "detect": "detection",
            "DEFAULT_PARENT": "manager", "DELEGATED_PARENT": "manager",
            "CgroupManager": "manager"}
_SUBMODULES = ("base", "convert", "detection", "manager", "v1", "v2")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    import importlib
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
