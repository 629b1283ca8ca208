#!/usr/bin/env python3
"""First contentful paint of a page in headless Chromium, over WebDriver (chromedriver), the
median of N loads. Usage: scripts/bench-ui-fcp.py URL [N]  (used by scripts/bench-ui.sh)"""
import json, socket, subprocess, sys, tempfile, urllib.request

url, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
for line in driver.stdout:
    if "started successfully" in line:
        break
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["value"]

try:
    with tempfile.TemporaryDirectory() as profile:
        sid = call("POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"]}}}})["sessionId"]
        times = []
        for _ in range(n + 2):
            call("POST", f"/session/{sid}/url", {"url": "about:blank"})
            call("POST", f"/session/{sid}/url", {"url": url})
            fcp = call("POST", f"/session/{sid}/execute/async", {"args": [], "script":
                "const done = arguments[0]; new PerformanceObserver((l) => done(l.getEntries()[0].startTime))"
                ".observe({type: 'paint', buffered: true});"})
            times.append(fcp)
        call("DELETE", f"/session/{sid}")
    times = sorted(times[2:])
    print(f"first contentful paint of {url}: median {times[len(times) // 2]:.0f} ms, max {times[-1]:.0f} ms ({n} loads)")
finally:
    driver.kill()
