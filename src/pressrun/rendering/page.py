"""One warm Chromium page and the recipe that turns a document into pixels or a PDF.

The recipe, per row: load the document → wait for stylesheets, fonts and images → capture.

Capture: where the browser has frame control (the headless shell launched with chromium.py's
FRAME_CONTROL_ARGS; each page probes for it as it opens), nothing is
drawn while a row loads; one HeadlessExperimental.beginFrame then draws the finished page and
returns its screenshot. Captures that need a clip or a device scale go through
Page.captureScreenshot, which waits for a frame, so frames are issued until it answers.

Loading reuses the page: when a row's ``<head>`` is the same as the previous row's (the usual case:
one template, many rows), only ``<body>`` is swapped, so stylesheets and web fonts are parsed and
loaded once per page, not once per row. Otherwise the document is rewritten in place. Either way the
page's URL stays on the template origin, so relative URLs resolve to the template's own files.

With JavaScript on (``render.javascript``), each row is a new document instead, navigated to and
served by the request handler: a swapped body's scripts would never run, and a rewritten document
keeps the previous row's globals and timers. A script page may hold the capture back by setting
``window.pressrunReady = false`` while it loads and ``true`` when it has finished; frames are drawn
while it settles, so ``requestAnimationFrame`` callbacks run under frame control too.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

import pybase64
from playwright.async_api import BrowserContext, CDPSession, Frame, Page, Request, Route
from playwright.async_api import Error as PlaywrightError

from pressrun.errors import AssetLoadError, BlockedUrlError, ScriptError, SelectorNotFoundError
from pressrun.models import OutputFormat, RenderOptions
from pressrun.rendering.assets import AssetCache
from pressrun.rendering.bridge import CdpBridge, Chromium
from pressrun.rendering.pagebox import exact_page_box
from pressrun.rendering.policy import TEMPLATE_ORIGIN, NetworkPolicy, PassThrough, Refuse, ServeAsset

MAX_REDIRECTS = 5
# Frames issued back to back while Page.captureScreenshot waits for one, before pausing between them.
PROMPT_FRAMES = 3
# While a document is still loading: look again at once this many times, then every LOAD_POLL_S.
PROMPT_POLLS = 3
LOAD_POLL_S = 0.005
# Requested frames that may come back without a screenshot before the capture takes the slow path.
FRAME_ATTEMPTS = 3
SHELL_HTML = "<!doctype html><html><head></head><body></body></html>"
# How a browser without frame control answers a requested frame: full Chromium has no
# HeadlessExperimental domain; a headless shell launched without the flag refuses.
NO_FRAME_CONTROL = re.compile(r"wasn't found|BeginFrameControl")
# How CDP answers a call on an object whose document has been replaced.
STALE_OBJECT = re.compile(r"Cannot find context|Could not find object|Inspected target navigated or closed")

# Whether the document has finished loading: parsed, and every stylesheet it links (and their
# @imports) in. A document put on the page with document.write() says readyState 'complete' while its
# stylesheets are still on their way, so readyState alone would let a capture race them. A sheet
# Blink fetched for this row but will not use (served as text/plain, say) never gets a .sheet: its
# finished fetch (a resource timing entry since the row was put) settles it; links Blink never
# fetches (another type, no href, alternate) are skipped.
DOCUMENT_LOADED = r"""
() => {
  if (document.readyState !== 'complete') return false;
  const since = document.__pressrunPutAt ?? 0;
  const fetched = (url) => performance.getEntriesByName(url).some((entry) => entry.startTime >= since);
  // A sheet fetched and refused once is reused as refused by later rows of the document, unasked.
  const known = (document.__pressrunRefused ??= new Set());
  const refused = (url) => known.has(url) || (fetched(url) && known.add(url));
  const imported = (sheet) => {
    try {
      return [...sheet.cssRules].every((rule) => !(rule instanceof CSSImportRule) ||
        (rule.styleSheet ? imported(rule.styleSheet) : refused(new URL(rule.href, sheet.href || document.baseURI).href)));
    } catch (e) { return true; }  // another origin's sheet: its rules cannot be read, it has loaded
  };
  for (const link of document.querySelectorAll('link[rel~="stylesheet" i]')) {
    if (link.__pressrunSettled || link.disabled || !(link.getAttribute('href') || '').trim()) continue;
    if (/\balternate\b/i.test(link.rel)) continue;  // never applied
    if (link.type && !/^\s*text\/css\s*(;.*)?$/i.test(link.type)) continue;  // a type Blink does not load
    if (link.sheet ? !imported(link.sheet) : !refused(link.href)) return false;
    // In, or fetched and refused (it stays unused): a <head> link stays so for the rows to come.
    link.__pressrunSettled = true;
  }
  for (const style of document.querySelectorAll('style')) {
    if (style.__pressrunSettled || !style.sheet) continue;
    if (!imported(style.sheet)) return false;
    style.__pressrunSettled = true;
  }
  return true;
}
"""

# Puts a row's document on the page (``put``; else only looks again), and once it has loaded, waits
# for everything the capture needs and returns the URLs of images that failed. Returns null while the
# document is still loading: with JavaScript off, Blink runs no event listener (not even one added
# over CDP), so the page cannot wait for its own load event; the caller asks again (put=false).
LOAD_AND_SETTLE = r"""
async ([html, allowSwap, put, mentionsUrl]) => {
  if (put) {
    // Resource timing entries since this moment are this row's fetches (a navigated document, in
    // JavaScript mode, has its own timeline: all of it counts). Cleared, so the buffer (250) never fills.
    performance.clearResourceTimings();
    document.__pressrunPutAt = html === null ? 0 : performance.now();
    if (html === null) {
      // The row's document was navigated to (JavaScript on): it is already in place.
      document.__pressrunHead = undefined;
    } else {
      const parsed = new DOMParser().parseFromString(html, 'text/html');
      // <title> and <meta> do not change how a page renders; a per-row <title> must not defeat the swap.
      const headKey = [...parsed.head.children]
        .filter((el) => el.tagName !== 'TITLE' && el.tagName !== 'META')
        .map((el) => el.outerHTML).join('');
      if (allowSwap && document.__pressrunHead === headKey && document.body) {
        const root = document.documentElement;
        for (const attr of [...root.attributes]) root.removeAttribute(attr.name);
        for (const attr of parsed.documentElement.attributes) root.setAttribute(attr.name, attr.value);
        document.body.replaceWith(document.adoptNode(parsed.body));
      } else {
        document.open();
        document.write(html);
        document.close();
        document.__pressrunHead = headKey;
        document.__pressrunSheetUrls = undefined;
      }
    }
  }
  if (!(DOCUMENT_LOADED)()) return null;
  // A script page that set window.pressrunReady = false is still drawing: wait for it to say true,
  // or for one of its scripts to fail (then it never will). A rejected promise is a failure once it
  // has gone unhandled for 250 ms (the capture waits that long for it too): code that awaits one
  // promise, then another, handles the second one's rejection only once the first has settled.
  const scriptErrors = window.__pressrunErrors || [];
  const young = (error) => error.rejection && performance.now() - error.at < 250;
  const failed = () => scriptErrors.some((error) => !young(error));
  const pause = () => new Promise((resolve) => setTimeout(resolve, 10));
  while (window.pressrunReady === false && !failed()) await pause();
  if (failed()) return { scriptError: scriptErrors[0].message };
  // Force style and layout so every font the page uses has started loading before we wait on them.
  void document.documentElement.getBoundingClientRect();
  await document.fonts.ready;
  const broken = [];
  const label = (src) => (src.startsWith('data:') ? src.slice(0, 40) + '…' : src);
  const probe = (url) => (async () => {
    const image = new Image();
    image.src = url;
    try { await image.decode(); } catch (e) { broken.push(label(url)); }
  })();
  const waits = [...document.images].map(async (img) => {
    const src = img.getAttribute('src') || img.getAttribute('srcset');
    if (!src) return;
    img.loading = 'eager';
    try { await img.decode(); } catch (e) { broken.push(label(img.currentSrc || src)); }
  });
  // Images that are not <img> elements: SVG <image>, video posters, <input type=image>.
  for (const el of document.querySelectorAll('image, video[poster], input[type=image][src]')) {
    const url = el.getAttribute('poster') || el.getAttribute('src') || el.getAttribute('href') || el.getAttribute('xlink:href');
    if (url && !url.startsWith('#')) waits.push(probe(new URL(url, document.baseURI).href));
  }
  // CSS images (backgrounds, borders, masks, list markers, generated content) are neither in
  // document.images nor always requested before 'load'; a browser may start them only when it
  // paints. Resolve them from computed styles and wait for each through the image cache, so the
  // capture never races a background, and a blocked one is reported like any other.
  // Linked stylesheets are the same for every row of a template: read them once per document
  // (all of them have loaded by now).
  if (document.__pressrunSheetUrls === undefined) {
    const mentionsUrl = (sheet) => {
      try {
        return [...sheet.cssRules].some((rule) =>
          rule.cssText.includes('url(') || (rule.styleSheet && mentionsUrl(rule.styleSheet)));
      } catch (e) { return true; }  // unreadable (another origin): it may have some
    };
    document.__pressrunSheetUrls = [...document.styleSheets].some((sheet) => sheet.href && mentionsUrl(sheet));
  }
  const inlineUrls = mentionsUrl ?? (html ?? document.documentElement.outerHTML).includes('url(');
  if (inlineUrls || document.__pressrunSheetUrls) {
    const urls = new Set();
    const pattern = /url\(\s*(["']?)(.*?)\1\s*\)/g;
    const collect = (style) => {
      for (const prop of ['background-image', 'border-image-source', 'list-style-image', 'mask-image', '-webkit-mask-image', 'content']) {
        const value = style.getPropertyValue(prop);
        if (!value || !value.includes('url(')) continue;
        for (const match of value.matchAll(pattern)) if (!match[2].startsWith('data:')) urls.add(match[2]);
      }
    };
    for (const el of document.querySelectorAll('*')) {
      collect(getComputedStyle(el));
      collect(getComputedStyle(el, '::before'));
      collect(getComputedStyle(el, '::after'));
    }
    for (const url of urls) waits.push(probe(url));
  }
  await Promise.all(waits);
  while (scriptErrors.length && !failed()) await pause();  // a rejection that may yet be handled
  if (scriptErrors.length) return { scriptError: scriptErrors[0].message };
  return broken;
}
""".replace("DOCUMENT_LOADED", DOCUMENT_LOADED.strip())

# With JavaScript on, runs in every document before its own scripts: keeps the uncaught errors and
# unhandled promise rejections of the template's scripts, which then fail the row (script_error)
# instead of leaving a blank chart or holding the capture until the timeout.
SCRIPT_ERRORS = r"""
window.__pressrunErrors = [];
window.addEventListener('error', (event) => {
  if (!(event instanceof ErrorEvent)) return;  // a resource that failed to load: reported apart
  // Chromium's notice that a ResizeObserver callback resized again (responsive charts do): no error.
  if (event.error == null && /^ResizeObserver loop/.test(event.message || '')) return;
  const where = event.lineno ? ` (line ${event.lineno}${event.colno ? ':' + event.colno : ''})` : '';
  window.__pressrunErrors.push({ message: `${event.message || 'script error'}${where}` });
});
const pressrunRejections = new Map();
window.addEventListener('unhandledrejection', (event) => {
  const error = { message: `unhandled promise rejection: ${String(event.reason)}`, rejection: true, at: performance.now() };
  pressrunRejections.set(event.promise, error);
  window.__pressrunErrors.push(error);
});
window.addEventListener('rejectionhandled', (event) => {  // handled after all, a moment later
  const at = window.__pressrunErrors.indexOf(pressrunRejections.get(event.promise));
  if (at >= 0) window.__pressrunErrors.splice(at, 1);
  pressrunRejections.delete(event.promise);
});
"""

ELEMENT_BOX = r"""
(selector) => {
  let el;
  try { el = document.querySelector(selector); } catch (e) { return 'invalid'; }
  if (!el) return null;
  const r = el.getBoundingClientRect();
  if (r.width < 1 || r.height < 1) return null;
  return { x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height };
}
"""


class DirectSession:
    """A page's CDP session whose commands go straight down Chromium's pipe (rendering/bridge.py),
    not through Playwright's driver: the commands every row sends. Events on the session still
    reach Playwright, which opened it."""

    def __init__(self, bridge: CdpBridge, session_id: str) -> None:
        self.bridge, self.session_id = bridge, session_id

    @classmethod
    async def over(cls, session: CDPSession, bridge: CdpBridge) -> DirectSession:
        info = await session.send("Target.getTargetInfo")
        session_id = bridge.session_for(info["targetInfo"]["targetId"])
        if session_id is None:  # the bridge saw no attach for this page: a bug, not a row's fault
            raise PlaywrightError("the page's CDP session is unknown to the pipe bridge")
        return cls(bridge, session_id)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.bridge.send(self.session_id, method, params)


@dataclass(frozen=True)
class Geometry:
    width_px: int
    height_px: int
    scale: float
    transparent: bool


@dataclass
class PageSlot:
    """A page the supervisor lends to one render at a time. Everything here is per-slot state."""

    index: int
    policy: NetworkPolicy
    assets: AssetCache
    javascript: bool
    fetch_timeout_s: float = 30.0
    frame_control: bool = False
    # Shared by all pages of one browser; see begin_frame.
    frame_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    context: BrowserContext | None = None
    page: Page | None = None
    cdp: DirectSession | None = None
    generation: int = -1
    geometry: Geometry | None = None
    asset_root: Path | None = None
    files: tuple[Path | None, tuple[int, ...]] | None = None  # (asset_root, files_version) the page has shown
    document: str | None = None  # served at the template origin's root; None: an empty shell
    global_object: str | None = None  # CDP object id of the current document's window, once asked for
    blocked: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # allowed URLs that failed: (url, why)
    tainted: bool = False  # the document saw a failed request: the next row starts a new one
    # Counts rows, and with JavaScript the documents put up: what a request's route handler refuses
    # or cannot serve counts against the current row only if the request was made under this count.
    row_serial: int = 0
    # JavaScript: the count each request was made under, taken as Playwright reports the request, in
    # order with the navigations (a route handler itself runs later). A row's document lives on, its
    # timers too, until the next row's replaces it: requests it makes meanwhile are not the next row's.
    request_rows: weakref.WeakKeyDictionary[Request, int] = field(default_factory=weakref.WeakKeyDictionary)
    awaiting_document: bool = False  # JavaScript: the row's document is being navigated to
    crashed: bool = False
    # Set when the page's renderer process dies: a call in flight to a dead page may never settle.
    crash_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def ensure(self, chromium: Chromium, generation: int, geometry: Geometry, frames: asyncio.Lock) -> None:
        """Have a live page of this geometry on the current browser, opening one if needed.

        ``frames`` is the browser's frame lock, shared by all its pages.
        """
        browser = chromium.browser
        if self.ready_for(generation, geometry):
            return
        await self.close()
        self.files = None
        self.tainted = False
        self.crashed, self.crash_event = False, asyncio.Event()
        self.frame_lock = frames
        self.context = await browser.new_context(
            viewport={"width": geometry.width_px, "height": geometry.height_px},
            device_scale_factor=geometry.scale,
            java_script_enabled=self.javascript,
            service_workers="block",
            accept_downloads=False,
        )
        await self.context.route("**/*", self._on_request)
        if self.javascript:
            await self.context.add_init_script(SCRIPT_ERRORS)
        self.page = await self.context.new_page()
        self.page.on("crash", self._on_crash)
        if self.javascript:
            self.page.on("request", self._on_request_made)
            self.page.on("framenavigated", self._on_navigated)
        self.cdp = await DirectSession.over(await self.context.new_cdp_session(self.page), chromium.bridge)
        await self.navigate("load")
        try:
            await self.begin_frame({"noDisplayUpdates": True})
            self.frame_control = True
        except PlaywrightError as exc:
            if not NO_FRAME_CONTROL.search(str(exc)):
                # Anything else (the page or browser failing right now) says nothing about frame
                # control: taken as "none", a frame-controlled page would never answer a capture.
                raise
            self.frame_control = False
        if geometry.transparent:
            await self.cdp.send(
                "Emulation.setDefaultBackgroundColorOverride", {"color": {"r": 0, "g": 0, "b": 0, "a": 0}}
            )
        self.generation = generation
        self.geometry = geometry

    def ready_for(self, generation: int, geometry: Geometry) -> bool:
        """Whether the page is open, alive, on the current browser and of this geometry."""
        return self.page is not None and self.generation == generation and self.geometry == geometry and not self.crashed

    async def close(self) -> None:
        context, self.context, self.page, self.cdp = self.context, None, None, None
        self.global_object = None
        if context is not None:
            try:
                await context.close()
            except Exception:  # noqa: BLE001 - the browser may already be gone; nothing to clean up then
                pass

    def _on_crash(self, page: Page) -> None:
        if page is not self.page:  # a page this slot has since replaced
            return
        self.crashed = True
        self.crash_event.set()

    def _on_request_made(self, request: Request) -> None:
        self.request_rows[request] = self.row_serial

    def _on_navigated(self, frame: Frame) -> None:
        # The row's own document is up: what the previous one asked for since this row began was not
        # this row's. (Not any main-frame navigation: a row's pushState, or a location change of its
        # own to a blocked URL, must not clear what the row itself asked for.)
        if frame.parent_frame is None and self.awaiting_document and frame.url == f"{TEMPLATE_ORIGIN}/":
            self.awaiting_document = False
            self.start_count()

    def start_count(self) -> None:
        """Requests made from now on are the current row's; what was noted before is forgotten."""
        self.row_serial += 1
        self.blocked.clear()
        self.missing.clear()
        self.failed.clear()

    async def _on_request(self, route: Route) -> None:
        row = self.request_rows.pop(route.request, self.row_serial)
        url = route.request.url
        decision = self.policy.decide(url, self.asset_root)
        if isinstance(decision, ServeAsset):
            if decision.relative == "":
                await route.fulfill(body=self.document or SHELL_HTML, content_type="text/html; charset=utf-8")
            elif decision.path is None:
                self._note(row, self.missing, decision.relative)
                await route.fulfill(status=404, body="not found")
            else:
                body, content_type = self.assets.read(decision.path)
                await route.fulfill(body=body, content_type=content_type)
        elif isinstance(decision, PassThrough):
            await self._fetch_allowed(route, row)
        else:
            assert isinstance(decision, Refuse)
            self._note(row, self.blocked, (url, decision.reason))
            await route.abort("blockedbyclient")

    def _note(self, row: int, found: list[Any], what: Any) -> None:
        """Keep what a request of count ``row`` ran into, if that count is still the current one
        (else the request was an earlier row's, which has finished)."""
        if row == self.row_serial:
            found.append(what)

    async def _fetch_allowed(self, route: Route, row: int) -> None:
        """Fetch an allowed URL outside Chromium's network stack and hand the response back.

        Chromium would refuse private-network hosts from the template origin (Private Network
        Access), and an operator who allowed a host meant it. Redirects are followed here, a hop at
        a time, and every hop must pass the policy too.
        """
        url = route.request.url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                response = await route.fetch(url=url, max_redirects=0, timeout=self.fetch_timeout_s * 1000)
            except PlaywrightError as exc:
                self._note(row, self.failed, (url, (exc.message or str(exc)).splitlines()[0]))
                await route.abort("failed")
                return
            location = response.headers.get("location")
            if not (300 <= response.status < 400 and location):
                if response.status >= 400:
                    self._note(row, self.failed, (url, f"HTTP {response.status}"))
                await route.fulfill(response=response)
                return
            url = urljoin(url, location)
            decision = self.policy.decide(url, self.asset_root)
            if not isinstance(decision, PassThrough):
                reason = decision.reason if isinstance(decision, Refuse) else "redirect into the template origin"
                self._note(row, self.blocked, (url, reason))
                await route.abort("blockedbyclient")
                return
        self._note(row, self.blocked, (url, f"more than {MAX_REDIRECTS} redirects"))
        await route.abort("blockedbyclient")

    async def load(self, html: str, asset_root: Path | None, allow_swap: bool = True) -> None:
        """Put ``html`` on the page and wait until it is ready to capture; raise on blocked/broken loads."""
        assert self.page is not None
        files = (asset_root, files_version(asset_root))
        # A new document when the page shows another template's files, or this template's changed
        # since (Blink would serve the old image for the same URL from the document's own cache),
        # or when the previous row failed a request: that taints the document, since requests its
        # <head> made (a stylesheet's @import, a web font) are not made again for a swapped body,
        # nor for a rewritten one (it keeps its failed resources and reuses them without asking).
        files_changed = files != self.files
        if files_changed or self.tainted:
            allow_swap = False
            # With JavaScript every row is a new document anyway; a page's first row has one.
            if not self.javascript and (self.tainted or self.files is not None):
                await self.navigate("load")
        self.files = files
        self.asset_root = asset_root
        self.start_count()
        self.tainted = True  # until this row has loaded cleanly
        if self.javascript:
            self.document = html
            self.awaiting_document = True
            try:
                await self.navigate("commit")
            finally:
                self.document = None
                self.awaiting_document = False
            args: list[Any] = [None, False, True, None]
        else:
            args = [html, allow_swap, True, None]
        broken: list[str] | dict[str, str] | None = await self.call(LOAD_AND_SETTLE, args, drawing=self.javascript)
        polls = 0
        while broken is None:  # still loading (a stylesheet on its way): look again shortly
            self.raise_for_requests()
            polls += 1
            await asyncio.sleep(LOAD_POLL_S if polls > PROMPT_POLLS else 0)
            # Looking again needs only whether the row's HTML has url(...) in it, not the HTML itself.
            # A stylesheet that neither arrives nor fails is waited on until the render's own timeout.
            again = [None, False, False, None if self.javascript else "url(" in html]
            broken = await self.call(LOAD_AND_SETTLE, again, drawing=self.javascript)
        self.raise_for_requests()
        if isinstance(broken, dict):
            raise ScriptError(f"the template's script failed: {shorten(broken['scriptError'])}",
                              script_error=shorten(broken["scriptError"]))
        if broken:
            src = broken[0]
            if src.lower().startswith("file:"):
                raise BlockedUrlError(f"blocked request to {shorten(src)}: file: URLs are not allowed", url=src)
            raise AssetLoadError(f"image {shorten(src)!r} failed to load", url=shorten(src))
        self.tainted = False

    def raise_for_requests(self) -> None:
        """Fail the row for the first request the page made that was refused or failed."""
        if self.blocked:
            url, reason = self.blocked[0]
            raise BlockedUrlError(
                f"blocked request to {shorten(url)}: {reason} (setting PRESSRUN_RENDER__ALLOWED_HOSTS)",
                url=shorten(url),
            )
        if self.missing:
            raise AssetLoadError(
                f"asset {self.missing[0]!r} was not found in the template folder", asset=self.missing[0]
            )
        if self.failed:
            url, status = self.failed[0]
            raise AssetLoadError(f"{shorten(url)} failed to load: {status}", url=shorten(url))

    async def navigate(self, wait_until: Literal["commit", "load"]) -> None:
        """Load the template origin's root (``self.document``, else an empty shell) as a new document."""
        assert self.page is not None
        self.global_object = None  # the window it names goes with the old document
        await self.page.goto(f"{TEMPLATE_ORIGIN}/", wait_until=wait_until)

    async def call(self, function: str, arg: Any, *, drawing: bool = False) -> Any:
        """Call a page function with a JSON argument and await its JSON result, in one CDP round trip.

        Runtime.callFunctionOn on the page's own session, with the function's source the same on
        every call and the row passed as an argument: V8 then compiles the function once, not once
        per row with the row's HTML inside it (Playwright's page.evaluate does the same with more
        bookkeeping on both sides of its driver, and this runs once per row). ``drawing``: draw
        frames until it answers, for page scripts that wait on animation frames.
        """
        assert self.cdp is not None
        for attempt in (1, 2):
            if self.global_object is None:
                reply = await self.cdp.send("Runtime.evaluate", {"expression": "globalThis"})
                self.global_object = reply["result"]["objectId"]
            params = {
                "functionDeclaration": function,
                "objectId": self.global_object,
                "arguments": [{"value": arg}],
                "awaitPromise": True,
                "returnByValue": True,
            }
            try:
                if drawing:
                    reply = await self._answered_by_a_frame("Runtime.callFunctionOn", params)
                else:
                    reply = await self.cdp.send("Runtime.callFunctionOn", params)
                break
            except PlaywrightError as exc:
                # The document went away on its own (a meta refresh; a script's location change)
                # and took its window with it: ask for the new one, once.
                if attempt == 2 or not STALE_OBJECT.search(str(exc)):
                    raise
                self.global_object = None
        if details := reply.get("exceptionDetails"):
            description = (details.get("exception") or {}).get("description") or details.get("text", "")
            raise PlaywrightError(f"page script failed: {description.splitlines()[0] if description else details}")
        return reply["result"].get("value")

    async def element_box(self, selector: str) -> dict[str, float]:
        """The clip of the first element matching ``selector`` (in CSS pixels)."""
        assert self.page is not None
        box = await self.call(ELEMENT_BOX, selector)
        if box == "invalid":
            raise SelectorNotFoundError(f"selector {selector!r} is not a valid CSS selector", selector=selector)
        if box is None:
            raise SelectorNotFoundError(f"no element matches selector {selector!r}", selector=selector)
        return box

    async def screenshot(self, options: RenderOptions) -> tuple[bytes, tuple[int, int]]:
        """The capture and its size in device pixels."""
        assert self.cdp is not None
        encoding: dict[str, object] = {"format": options.format.value}
        if options.format is OutputFormat.PNG:
            # Chromium's own PNG encoder is its slowest step; take the fast, large encoding and
            # let encode.py recompress it off the browser's critical path.
            encoding["optimizeForSpeed"] = True
        else:
            encoding["quality"] = options.quality
        size = options.output_size_px
        if self.frame_control and options.scale == 1 and not options.selector:
            # The frame's own screenshot is the viewport at one device pixel per CSS pixel. A frame
            # can come back without one while a renderer initialises: try a few, then fall through
            # to the general path.
            for _attempt in range(FRAME_ATTEMPTS):
                reply = await self.begin_frame({"screenshot": encoding})
                if data := reply.get("screenshotData"):
                    return pybase64.b64decode(data), size
        params: dict[str, object] = {**encoding, "captureBeyondViewport": False, "fromSurface": True}
        # A clip makes Chromium re-emulate the viewport for one capture; only pay it when needed:
        # for an element, or to capture at the device scale rather than one pixel per CSS pixel.
        if options.selector:
            clip = await self.element_box(options.selector)
            params["clip"] = {**clip, "scale": options.scale}
            size = (round(clip["width"] * options.scale), round(clip["height"] * options.scale))
        elif options.scale != 1:
            params["clip"] = {"x": 0, "y": 0, "width": options.width_px, "height": options.height_px, "scale": options.scale}
        reply = await self._answered_by_a_frame("Page.captureScreenshot", params)
        return pybase64.b64decode(reply["data"]), size

    async def begin_frame(self, params: dict[str, object]) -> dict[str, Any]:
        """Draw one frame (HeadlessExperimental.beginFrame), holding the browser's frame lock:
        the headless shell crashes when two of its pages draw requested frames at once."""
        assert self.cdp is not None
        async with self.frame_lock:
            return await self.cdp.send("HeadlessExperimental.beginFrame", params)

    async def _answered_by_a_frame(self, method: str, params: dict[str, object]) -> dict[str, Any]:
        """Send a command that waits for the page to draw; under frame control, draw until it answers."""
        assert self.cdp is not None
        if not self.frame_control:
            return await self.cdp.send(method, params)
        reply = asyncio.ensure_future(self.cdp.send(method, params))
        try:
            frames = 0
            while not reply.done():
                await self.begin_frame({})
                frames += 1
                if frames > PROMPT_FRAMES:
                    await asyncio.wait({reply}, timeout=0.02)
            return reply.result()
        finally:
            if not reply.done():
                reply.cancel()

    async def pdf(self, options: RenderOptions) -> bytes:
        """Print to PDF in one CDP round trip (Playwright's page.pdf streams it back in chunks)."""
        assert self.cdp is not None
        width_in, height_in = options.pdf.page_inches(options.width_px, options.height_px)
        margin_in = options.pdf.margin_mm / 25.4
        reply = await self.cdp.send(
            "Page.printToPDF",
            {
                "paperWidth": width_in,
                "paperHeight": height_in,
                "printBackground": options.pdf.print_background,
                "marginTop": margin_in,
                "marginBottom": margin_in,
                "marginLeft": margin_in,
                "marginRight": margin_in,
                "preferCSSPageSize": False,
                "generateTaggedPDF": False,
            },
        )
        return exact_page_box(pybase64.b64decode(reply["data"]), width_in * 72, height_in * 72)


def files_version(asset_root: Path | None) -> tuple[int, ...]:
    """Changes whenever a file is added, replaced or removed in the template folder or its
    assets/ folder (writes land by rename, which updates the folder's modification time)."""
    if asset_root is None:
        return ()
    version = []
    for folder in (asset_root, asset_root / "assets"):
        try:
            version.append(folder.stat().st_mtime_ns)
        except OSError:
            version.append(0)
    return tuple(version)


def shorten(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"
