"""The Resource Manager: cgroup v1 and v2 drivers behind one interface.

    layout = cgroups.detect()
    mgr = cgroups.CgroupManager(parent=None, layout=layout)   # None: the default parent
    cg = mgr.create(container_id, resources)

See docs/design.md, "Cgroups", for detection, placement and conversions.
"""

from .base import Cgroup, Features
from .convert import shares_to_weight, weight_to_shares
from .detection import Layout, detect
from .manager import DEFAULT_PARENT, DELEGATED_PARENT, CgroupManager

__all__ = ["Cgroup", "CgroupManager", "DEFAULT_PARENT", "DELEGATED_PARENT", "Features",
           "Layout", "detect", "shares_to_weight", "weight_to_shares"]
