"""How a create request that names a template reaches its image (mcd.images.config.prepare
with templates as images, mcd.images.templates): by ``root.image`` (what ``mcctl run NAME``
sends) or by ``root.template`` (the raw API, the Docker API, or no root at all: minimal).
The image store and the template side are stand-ins here (the real ones are in the linux
and integration tiers: test_template_images.py, test_template_upgrade.py)."""

from __future__ import annotations

from mcd.errors import NotFound
from mcd.images import config

TPL_ID = "sha256:" + "7" * 64
TPL_CFG = {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                  "/sbin:/bin"],
           "Labels": {config.TEMPLATE_LABEL: "minimal"}}


class Images:
    def __init__(self, built: bool):
        self.built = built

    def resolve(self, ref):
        if self.built and ref in ("minimal", "minimal:latest"):
            return TPL_ID
        raise NotFound(f"no such image: {ref}")

    def config(self, image_id):
        return {"config": TPL_CFG}

    def lowers(self, image_id):
        return []

    def tags_of(self, image_id):
        return ["minimal:latest"]


class Templates:
    """The TemplateImages surface prepare uses; ``old`` names a tree not migrated."""

    def __init__(self, images, old=()):
        self.images, self.old, self.built = images, set(old), []

    def unmigrated(self, name):
        return {"name": name} if name in self.old else None

    def exists(self, name):
        return name in self.old or name == "minimal"

    def image_id(self, name):
        if name != "minimal":
            return None
        if not self.images.built:
            self.images.built = True
            self.built.append(name)
        return TPL_ID


def test_run_minimal_builds_it_once_and_runs_the_image_with_the_template_defaults():
    images = Images(built=False)
    t = Templates(images)
    spec, meta = config.prepare({"root": {"image": "minimal"}, "process": {}}, t, images)
    assert t.built == ["minimal"]
    assert spec["root"] == {"image": TPL_ID}
    assert spec["process"]["args"] == ["sh"]                  # the template default, as before
    assert spec["process"]["env"] == TPL_CFG["Env"]
    assert meta["ref"] == "minimal" and meta["id"] == TPL_ID  # ps shows "minimal"
    assert "labels" not in spec and "labels" not in meta["from_image"]  # the mark stays
    spec, _ = config.prepare({"root": {"image": "minimal"}, "process": {"args": ["true"]}},
                             t, images)
    assert t.built == ["minimal"] and spec["process"]["args"] == ["true"]


def test_root_template_or_no_root_is_the_templates_image_with_the_process_as_given():
    images = Images(built=True)
    t = Templates(images)
    for data in ({"root": {"template": "minimal", "readonly": True},
                  "process": {"args": ["echo", "hi"]}},
                 {"process": {"args": ["echo", "hi"]}}):
        spec, meta = config.prepare(data, t, None)
        assert spec["root"]["image"] == TPL_ID and "template" not in spec["root"]
        assert spec["root"].get("readonly") == (data.get("root") or {}).get("readonly")
        assert spec["process"] == {"args": ["echo", "hi"]}
        assert meta == {"id": TPL_ID, "ref": "minimal", "from_image": [], "exposed_ports": []}


def test_a_tree_not_migrated_runs_as_a_template_and_unknown_names_are_404():
    images = Images(built=True)
    t = Templates(images, old={"legacy"})
    spec, meta = config.prepare({"root": {"template": "legacy"}, "process": {"args": ["x"]}},
                                t, None)
    assert spec["root"] == {"template": "legacy"} and meta is None
    spec, meta = config.prepare({"root": {"image": "legacy"}, "process": {}}, t, images)
    assert spec["root"] == {"template": "legacy"} and spec["process"]["args"] == ["sh"]
    try:
        config.prepare({"root": {"image": "nope"}, "process": {}}, t, images)
    except NotFound as err:
        assert "no such image: nope" in str(err) and "no template 'nope'" in str(err)
    else:
        raise AssertionError("an unknown name must be refused")
    # the bare tree store (no image_id): prepare leaves root.template alone
    spec, meta = config.prepare({"root": {"template": "minimal"}, "process": {"args": ["x"]}},
                                object(), None)
    assert spec["root"] == {"template": "minimal"} and meta is None


def test_the_image_store_is_opened_once_by_concurrent_first_requests(tmp_path, monkeypatch):
    """Opening the store empties its tmp/: a second open racing the first request's
    template build removed that build's staging (50 parallel creates of minimal)."""
    import threading
    import time

    from mcd.images import store as store_mod
    from manager_fakes import make_manager

    opened = []
    real = store_mod.open_store

    def slow_open(root):
        opened.append(root)
        time.sleep(0.05)        # widen the window the race needs
        return real(root)

    monkeypatch.setattr(store_mod, "open_store", slow_open)
    m = make_manager(str(tmp_path))
    got = []
    threads = [threading.Thread(target=lambda: got.append(m.images)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1 and len({id(s) for s in got}) == 1
