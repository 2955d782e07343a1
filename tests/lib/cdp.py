"""tests/lib/cdp.py: drive headless Chromium through the DevTools protocol
over --remote-debugging-pipe (file descriptors 3 and 4, messages separated
by NUL bytes), so a test can type into a page, click, reload and read the
DOM without any package beyond the standard library.

    with Chrome(profile_dir) as c:
        page = c.new_page()                 # its own browser context: fresh storage
        page.goto("http://127.0.0.1:8080/")
        page.wait("document.querySelector('#login') && !document.querySelector('#login').hidden")
        page.eval("...")                    # value of a JS expression
        page.screenshot("out.png")
"""
import base64
import json
import os
import subprocess
import time


class Chrome:
    def __init__(self, profile, log=None):
        self.profile = profile
        self.log = log
        self.next_id = 0
        self.buf = b""

    def __enter__(self):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4: a shell
        # moves our pipe ends there just before it becomes chromium.
        args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}", "--window-size=1280,900", "about:blank"]
        self.proc = subprocess.Popen(
            ["sh", "-c", 'exec 3<&"$1" 4>&"$2"; shift 2; exec "$@"', "sh", str(to_chrome_r), str(from_chrome_w)]
            + args, pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL,
            stdout=self.log or subprocess.DEVNULL, stderr=self.log or subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        return self

    def __exit__(self, *exc):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.to_chrome)
        os.close(self.from_chrome)

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            import select
            r, _, _ = select.select([self.from_chrome], [], [], 0.2)
            if r:
                chunk = os.read(self.from_chrome, 1 << 16)
                if not chunk:
                    raise EOFError("chromium closed the pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=20):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def new_page(self, fresh_context=True):
        params = {"url": "about:blank"}
        if fresh_context:
            params["browserContextId"] = self.call("Target.createBrowserContext")["browserContextId"]
        target = self.call("Target.createTarget", params)["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        return page


class Page:
    def __init__(self, chrome, session):
        self.chrome = chrome
        self.session = session

    def call(self, method, params=None, timeout=20):
        return self.chrome.call(method, params, self.session, timeout)

    def goto(self, url):
        self.call("Page.navigate", {"url": url})

    def reload(self):
        self.call("Page.reload")

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def wait(self, expr, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.eval(f"!!({expr})"):
                    return True
            except RuntimeError:
                pass                      # navigating: the context is gone for a moment
            time.sleep(0.1)
        raise TimeoutError(f"never true: {expr}")

    def type_into(self, selector, text):
        """Focus the field and type text as key events (as a person would)."""
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text})

    def click(self, selector):
        self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
