"""The dashboard in a real headless Chromium against a real mcd.

Containers are made through the Unix socket (as mcctl would); the page only
ever learns of them through its own live feed, so every "the row appears" below
is the SSE path working end to end without a reload.
"""

from __future__ import annotations

import re

from mcweb_harness import screenshot, wait_for

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
MiB = 1024 * 1024


def row(page, name):
    return page.locator(f'#rows tr[data-name="{name}"]')


def wait_row_state(page, name, pattern, timeout=30_000):
    page.wait_for_function(
        """([name, pat]) => { const r = document.querySelector(`#rows tr[data-name="${name}"] .badge`);
                              return r && new RegExp(pat).test(r.textContent); }""",
        arg=[name, pattern], timeout=timeout)


def test_overview_lists_and_follows_starts_and_stops_without_reload(daemon, open_page):
    daemon.api_run("alpha", ["sleep", "1000"], memory=64 * MiB)
    w = open_page(daemon.url + "/")
    page = w.page
    wait_row_state(page, "alpha", "^running$")
    page.evaluate("window.__sameDocument = 42")

    # A container created and started after the page opened shows up by itself.
    daemon.api_run("beta", ["sh", "-c", "echo hello; sleep 1000"])
    wait_row_state(page, "beta", "^running$")
    r = row(page, "beta")
    assert re.fullmatch(r"[0-9a-f]{12}", r.locator("td").nth(1).inner_text().strip())
    assert r.locator("td").nth(2).inner_text() == "minimal"
    # Memory "used / limit" for alpha, from the same sample the API would give.
    page.wait_for_function(
        """() => /\\/ 64 MiB/.test(document.querySelector('#rows tr[data-name="alpha"] td:nth-child(7)').textContent)""",
        timeout=30_000)
    page.wait_for_function(
        """() => document.getElementById('count-running').textContent === '2'""", timeout=30_000)

    # Stopping it is seen too, with the exit code, and the page never reloaded.
    status, _ = daemon.api("POST", "/v1/containers/beta/stop?t=1")
    assert status == 200
    wait_row_state(page, "beta", r"^exited \(\d+\)")
    assert page.evaluate("window.__sameDocument") == 42

    # Filter and sort are client-side over the live rows.
    page.fill("#filter", "alp")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    assert row(page, "alpha").count() == 1
    page.fill("#filter", "")
    page.click('th[data-sort="name"]')       # name ascending -> descending
    page.wait_for_function(
        """() => { const n = [...document.querySelectorAll('#rows tr')].map(r => r.dataset.name);
                   return n.indexOf('beta') < n.indexOf('alpha'); }""")
    page.click('th[data-sort="name"]')
    page.wait_for_function(
        """() => { const n = [...document.querySelectorAll('#rows tr')].map(r => r.dataset.name);
                   return n.indexOf('alpha') < n.indexOf('beta'); }""")

    # The host summary is filled from /v1/info and the host.
    assert "cgroup" in page.inner_text("#host-cgroup")
    assert re.search(r"\d+ CPU", page.inner_text("#host-cpus"))
    screenshot(page, "overview.png")
    daemon.api("DELETE", "/v1/containers/beta?force=1")
    page.wait_for_function("""() => !document.querySelector('#rows tr[data-name="beta"]')""",
                           timeout=30_000)
    assert page.evaluate("window.__sameDocument") == 42


def test_memory_chart_rises_when_the_container_allocates(daemon, open_page):
    daemon.api_run("hog", ["sleep", "1000"], memory=128 * MiB)
    w = open_page(daemon.url + "/#/c/hog")
    page = w.page
    page.wait_for_function("() => Number(document.getElementById('chart-mem').dataset.points) >= 3",
                           timeout=30_000)
    before = page.evaluate("() => ({...document.getElementById('chart-mem').dataset})")
    assert int(before["last"]) < 20 * MiB

    # 40 MB into a tmpfs inside the container: charged to its memory cgroup and held.
    status, body = daemon.api("POST", "/v1/containers/hog/exec", {
        "process": {"args": ["sh", "-c", "mkdir -p /dev/shm; head -c 40000000 /dev/zero "
                                         "> /dev/shm/fill; sleep 1000"]},
        "detach": True})
    assert status == 201, body
    page.wait_for_function(
        "(base) => Number(document.getElementById('chart-mem').dataset.last) > base + 35 * 1024 * 1024",
        arg=int(before["last"]), timeout=30_000)
    after = page.evaluate("() => ({...document.getElementById('chart-mem').dataset})")
    # The line itself went up the canvas (smaller y), and there is ink where it ends.
    assert int(after["lastY"]) < int(before["lastY"]) - 10, (before, after)
    ink = page.evaluate("""([x, y]) => { const c = document.getElementById('chart-mem');
        const d = c.getContext('2d').getImageData(x * devicePixelRatio - 3, y * devicePixelRatio - 3, 7, 7).data;
        let a = 0; for (let i = 3; i < d.length; i += 4) a = Math.max(a, d[i]); return a; }""",
                        [int(after["lastX"]), int(after["lastY"])])
    assert ink > 100
    assert "128 MiB" in page.inner_text("#mem-now")
    assert "128 MiB" in page.inner_text("#c-limits")     # as set, and as the kernel has it
    screenshot(page, "container.png")


def test_logs_follow_new_lines(daemon, open_page):
    daemon.api_run("talker", ["sh", "-c", 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.3; done'])
    w = open_page(daemon.url + "/#/c/talker")
    page = w.page
    page.wait_for_function("() => /tick \\d+/.test(document.getElementById('logs').textContent)",
                           timeout=30_000)

    def last_tick():
        return max(int(n) for n in re.findall(r"tick (\d+)", page.inner_text("#logs")))

    first = last_tick()
    wait_for(lambda: last_tick() >= first + 5, 30, "five more log lines to arrive in the page")
    assert page.evaluate("() => document.getElementById('follow').checked")
    # The process list and the events tab are there too.
    page.click('button[data-tab="top"]')
    page.wait_for_function("() => document.querySelectorAll('#top-rows tr').length >= 1",
                           timeout=30_000)
    assert "COMMAND" in page.inner_text("#top-head")
    assert "sh -c" in page.inner_text("#top-rows")
    screenshot(page, "container-top.png")
    page.click('button[data-tab="events"]')
    page.wait_for_function("() => /started/.test(document.getElementById('events').textContent)",
                           timeout=30_000)
    page.click('button[data-tab="inspect"]')
    assert '"talker"' in page.inner_text("#inspect")


def test_an_oom_kill_is_shown_in_the_table_and_the_events(daemon, open_page):
    w = open_page(daemon.url + "/")
    page = w.page
    page.wait_for_function("() => Number(document.body.dataset.samples || 0) >= 1", timeout=30_000)
    # tail keeps every line it reads: on /dev/zero it grows until the kernel kills it.
    daemon.api_run("oomer", ["tail", "/dev/zero"], memory=16 * MiB)
    wait_row_state(page, "oomer", r"^exited \(137\) · OOM killed$", timeout=60_000)
    assert "oom" in row(page, "oomer").locator(".badge").get_attribute("class")
    page.goto(daemon.url + "/#/c/oomer")
    page.click('button[data-tab="events"]')
    page.wait_for_function("() => /oom/.test(document.getElementById('events').textContent)",
                           timeout=30_000)
    assert "OOM killed" in page.inner_text("#c-state")
    screenshot(page, "container-oom.png")
    daemon.api("DELETE", "/v1/containers/oomer?force=1")


def test_container_controlled_text_is_shown_as_text(daemon, open_page):
    daemon.api_run("xss", ["sh", "-c", f"echo '{XSS}'; sleep 1000"], labels={"note": XSS})
    w = open_page(daemon.url + "/")
    page = w.page
    wait_row_state(page, "xss", "^running$")
    assert XSS in row(page, "xss").inner_text()             # the label, literally
    w2 = open_page(daemon.url + "/#/c/xss")
    p2 = w2.page
    p2.wait_for_function("(x) => document.getElementById('logs').textContent.includes(x)", arg=XSS,
                         timeout=30_000)
    assert XSS in p2.inner_text("#c-details")               # command and label
    p2.click('button[data-tab="inspect"]')
    assert "alert(1)" in p2.inner_text("#inspect")
    for pg in (page, p2):
        # Nothing the container wrote became markup: no injected element, no dialog.
        assert pg.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0
        scripts = pg.evaluate("() => [...document.scripts].map(s => s.getAttribute('src'))")
        assert scripts == ["/static/app.js"]
    screenshot(p2, "container-xss.png")


def test_control_buttons_are_absent_and_refused_without_the_token(daemon, open_page):
    daemon.api_run("guarded", ["sleep", "1000"])
    w = open_page(daemon.url + "/")
    page = w.page
    wait_row_state(page, "guarded", "^running$")
    assert page.inner_text("#mode") == "read-only"
    assert page.locator("[data-action]").count() == 0
    # Even a hand-made request from the page itself is refused without the token.
    status = page.evaluate("""() => fetch('/v1/containers/guarded/stop', {method: 'POST'})
                                   .then(r => r.status)""")
    assert status == 403
    # A wrong token in the URL is dropped and the page stays read-only.
    w2 = open_page(daemon.url + "/#token=" + "A" * 43)
    w2.page.wait_for_function("() => !location.hash.includes('token')")
    w2.page.wait_for_selector(".toast.error")
    assert w2.page.inner_text("#mode") == "read-only"
    w2.page.goto(daemon.url + "/#/c/guarded")
    w2.page.wait_for_function("() => document.getElementById('c-state').textContent === 'running'")
    assert w2.page.locator("[data-action]").count() == 0
    assert daemon.status_of("guarded") == "running"


def test_control_with_the_token(daemon, open_page):
    daemon.api_run("ctl", ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.2; done'])
    w = open_page(daemon.url + "/#token=" + daemon.token)
    page = w.page
    # The token leaves the address bar at once; the tab keeps it in sessionStorage.
    page.wait_for_function("() => !location.hash.includes('token')")
    page.wait_for_function("() => document.getElementById('mode').textContent === 'control'")
    wait_row_state(page, "ctl", "^running$")
    r = row(page, "ctl")
    r.locator('[data-action="stop"]').click()
    wait_row_state(page, "ctl", r"^exited \(0\)$", timeout=60_000)
    assert daemon.status_of("ctl") == "stopped"
    r.locator('[data-action="start"]').click()
    wait_row_state(page, "ctl", "^running$", timeout=60_000)
    assert daemon.status_of("ctl") == "running"
    screenshot(page, "overview-control.png")

    page.goto(daemon.url + "/#/c/ctl")
    page.wait_for_selector('#c-actions [data-action="pause"]')
    page.click('#c-actions [data-action="pause"]')
    page.wait_for_function("() => document.getElementById('c-state').textContent === 'paused'",
                           timeout=60_000)
    assert daemon.status_of("ctl") == "paused"
    page.click('#c-actions [data-action="unpause"]')
    page.wait_for_function("() => document.getElementById('c-state').textContent === 'running'",
                           timeout=60_000)
    assert daemon.status_of("ctl") == "running"
    page.wait_for_selector('#c-actions [data-action="stop"]')
    screenshot(page, "container-control.png")
    # Remove asks for a second click before it acts.
    page.click('#c-actions [data-action="remove"]')
    assert daemon.status_of("ctl") == "running"
    page.click('#c-actions [data-action="remove"]')
    page.wait_for_function("() => location.hash === '#/'", timeout=60_000)
    wait_for(lambda: daemon.api("GET", "/v1/containers/ctl")[0] == 404, 30, "ctl to be removed")
    page.wait_for_function("""() => !document.querySelector('#rows tr[data-name="ctl"]')""",
                           timeout=30_000)


def test_dark_scheme_screenshot(daemon, browser_context):
    daemon.api_run("shade", ["sh", "-c", "while true; do echo dark; sleep 1; done"], memory=32 * MiB)
    page = browser_context.new_page()
    try:
        page.emulate_media(color_scheme="dark")
        page.goto(daemon.url + "/")
        page.wait_for_function("() => document.querySelectorAll('#rows tr').length >= 1",
                               timeout=30_000)
        bg = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert bg != "rgb(245, 246, 248)"          # the light background is not used
        screenshot(page, "overview-dark.png")
        page.goto(daemon.url + "/#/c/shade")
        page.wait_for_function("() => Number(document.getElementById('chart-mem').dataset.points) >= 2",
                               timeout=30_000)
        screenshot(page, "container-dark.png")
    finally:
        page.close()
