#!/usr/bin/env python3
"""Takes the README's screenshots: starts hostca on a scratch data directory, drives
Debian's chromium through chromedriver (WebDriver over HTTP, standard library only), and
saves PNGs in docs/screenshots/.  Usage: python3 docs/screenshots.py target/debug/hostca"""
import base64, json, os, subprocess, sys, tempfile, time, urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/hostca"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "screenshots")
PORT, DRIVER = 18099, 19515
BASE = f"http://127.0.0.1:{PORT}"

def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{DRIVER}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}").get("value")

def main():
    data = tempfile.mkdtemp()
    env = dict(os.environ, HOSTCA_ADMIN_PASSWORD="screenshot-password", RUST_LOG="warn")
    server = subprocess.Popen([BIN, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{PORT}"], env=env)
    driver = subprocess.Popen(["chromedriver", f"--port={DRIVER}"], stdout=subprocess.DEVNULL)
    time.sleep(1.5)
    try:
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,800"]}}}}
        sid = call("POST", "/session", caps)["sessionId"]
        s = f"/session/{sid}"
        def go(path): call("POST", f"{s}/url", {"url": BASE + path})
        def find(css): return list(call("POST", f"{s}/element", {"using": "css selector", "value": css}).values())[0]
        def type_(css, text): call("POST", f"{s}/element/{find(css)}/value", {"text": text})
        def click(css): call("POST", f"{s}/element/{find(css)}/click", {})
        def shot(name):
            with open(os.path.join(OUT, name), "wb") as f:
                f.write(base64.b64decode(call("GET", f"{s}/screenshot")))
        go("/login"); type_("#username", "admin"); type_("#password", "screenshot-password"); click("main button[type=submit]");
        for name, uses, valid in [("backup-media-01", "5", "2d"), ("dr-site-hosts", "20", "7d"), ("lab-nodes", "3", "12h")]:
            go("/security/tokens/new"); type_("#name", name); call("POST", f"{s}/element/{find('#max_uses')}/clear", {})
            type_("#max_uses", uses); call("POST", f"{s}/element/{find('#valid_for')}/clear", {}); type_("#valid_for", valid)
            type_("#reason", "Onboarding of the backup estate"); click("main button[type=submit]")
        go("/security/tokens"); shot("tokens.png")
        go("/security/tokens/backup-media-01"); click("form[action$='/show'] button"); shot("token-details.png")
        go("/security/ca"); shot("ca.png")
        call("DELETE", s)
    finally:
        driver.terminate(); server.terminate()

if __name__ == "__main__":
    main()
