"""The API fuzzed from its own published schema, with schemathesis, against a private daemon.

Schemathesis reads the daemon's ``GET /v1/openapi.json`` and generates requests from it:
each operation's examples and boundary values, then random (hypothesis) bodies, query
strings and path parameters, positive and negative, and -- through the schema's links --
sequences such as create -> start -> inspect -> rm. Every answer is checked:

* ``not_a_server_error``: no 5xx (the issue 11 finding: two handlers crashed with 500);
* ``status_code_conformance``, ``content_type_conformance``, ``response_schema_conformance``:
  the answer is one the schema declares, with the media type and the shape it declares.

The daemon is real (root, namespaces, cgroups) but fenced in: it runs in a network
namespace of its own (``unshare --net``: the bridges, iptables rules and registry
connections the fuzzer may cause stay there; the machine's links and firewall are never
touched) with its own network-config dir, and its ``minimal`` template is an empty tree,
so a generated container can be created, started and set up -- every step up to execve --
but never runs a program. Left out, and why: operations that read host paths as a
template source (``POST /v1/templates``, ``/v1/templates/import``, ``/v1/images/load``:
root callers may name any host path, such as ``/``); ``GET /v1/events`` and ``?stream=1``
of ``/v1/stats`` (answers that never end by design), ``/wait`` (blocks until a container
that may never start exits) and ``POST /v1/auth/login`` (it checks the credentials with
the registry, which from the fuzzer's empty network namespace is never reachable: 503
UNAVAILABLE, by design). ``/v1/images/pull`` stays: it answers 200 and reports an
unreachable registry in its stream.

Bounded: MC_FUZZ_EXAMPLES examples per operation (default 40), derandomized so a CI run is
reproducible; set MC_FUZZ_SEED for a different draw and MC_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import os

import hypothesis
import schemathesis
from schemathesis.checks import (content_type_conformance, not_a_server_error,
                                 response_schema_conformance, status_code_conformance)

EXAMPLES = int(os.environ.get("MC_FUZZ_EXAMPLES", "40"))
SEED = os.environ.get("MC_FUZZ_SEED")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXCLUDED = {"create_template", "import_template", "load_images", "events", "wait",
            "stats_all", "registry_login"}

schema = schemathesis.pytest.from_fixture("api_schema")


def _settings(f):
    kw = dict(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(hypothesis.HealthCheck))
    if SEED is None:
        kw["derandomize"] = True
    else:
        f = hypothesis.seed(int(SEED))(f)
    return hypothesis.settings(**kw)(f)


@schema.exclude(operation_id=sorted(EXCLUDED)).parametrize()
@_settings
def test_api_operation(case, fuzz_daemon, fuzz_session):
    case.call_and_validate(session=fuzz_session, base_url=fuzz_daemon.base_url, checks=CHECKS,
                           timeout=60)


def test_api_sequences_along_the_links(api_schema, fuzz_daemon, fuzz_session):
    """Sequences the schema's links allow (create -> start/inspect/kill/rm..., template and
    network ids fed along), each answer checked as above."""
    machine = api_schema.exclude(operation_id=sorted(EXCLUDED)).as_state_machine()

    base_networks = {n["name"] for n in fuzz_daemon.client.get("/v1/networks")}

    class Sequences(machine):
        def get_call_kwargs(self, case):
            return {"session": fuzz_session, "base_url": fuzz_daemon.base_url, "timeout": 60}

        def teardown(self):
            _reset(fuzz_daemon, base_networks)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

    Sequences.run(settings=_settings_for_sequences())


def _reset(daemon, base_networks):
    """Every sequence starts from the same daemon: what one left (a container, a network
    whose name the next one's create then finds taken, the minimal template removed)
    would change which rules the next one can take, and hypothesis, replaying a choice
    sequence that now meets other rules, fails with FlakyStrategyDefinition."""
    cl = daemon.client
    for c in cl.get("/v1/containers", all=True):
        cl.delete(f"/v1/containers/{c['id']}", force=True)
    for n in cl.get("/v1/networks"):
        if n["name"] not in base_networks:
            cl.delete(f"/v1/networks/{n['name']}")
    if "minimal" not in [t["name"] for t in cl.get("/v1/templates")]:
        cl.post("/v1/templates", {"name": "minimal", "path": daemon.empty_tree})


def _settings_for_sequences():
    kw = dict(max_examples=max(EXAMPLES // 2, 5), stateful_step_count=8, deadline=None,
              database=None, suppress_health_check=list(hypothesis.HealthCheck))
    if SEED is None:
        kw["derandomize"] = True
    return hypothesis.settings(**kw)
