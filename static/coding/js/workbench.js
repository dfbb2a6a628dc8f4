// The coders' workbench (templates/coding/policy_detail.html).
//
// Offsets: every .clause-text element's textContent is exactly its clause's stored text,
// so a selection is sent as (clause number, UTF-16 offset from the start of that text) for
// each end, plus the selected text as a check; the server converts to code points.
//
// Never lose work: a selection being saved is kept (with its offsets, not DOM nodes, so
// it survives redraws) until the server confirms it. A failed save says why and offers
// Retry; nothing is dropped silently. Saving the same passage twice is harmless (the
// server returns the existing reference).
(function () {
  "use strict";

  const root = document.getElementById("workbench");
  if (!root) return;

  const canCode = root.dataset.canCode === "true";
  const layer = root.dataset.layer || "";
  const picker = document.getElementById("node-picker");
  const filterInput = document.getElementById("picker-filter");
  const listBox = document.getElementById("picker-list");
  const recentGroup = picker ? picker.querySelector(".picker-recent") : null;
  const treeOptions = picker ? Array.from(picker.querySelectorAll(".picker-tree [role=option]")) : [];
  const popover = document.getElementById("ref-popover");
  const popoverBody = popover.querySelector(".popover-body");
  const alertBox = document.getElementById("wb-alert");
  const live = document.getElementById("wb-live");
  const SAVE_TIMEOUT_MS = 20000;
  const RECENT_MAX = 5;
  const RETRY_DELAYS_MS = [300, 1000];
  const hasHighlights = typeof Highlight === "function" && window.CSS && CSS.highlights;

  const paths = new Map(treeOptions.map((o) => [o.dataset.node, o.dataset.path]));

  let pending = null; // the selection the open picker will code
  let pickerMode = null; // "code" | "change"
  let changeForm = null; // the card form a "change" pick submits
  let returnFocus = null;
  let visible = []; // options shown in the picker, in order
  let active = -1;
  let saving = []; // selections sent, not yet confirmed
  let failed = []; // selections whose save failed: [{selection, node, message}]
  let popoverOpener = null;

  // --- small helpers -------------------------------------------------------------------

  function csrfToken() {
    // Read at each request: logging in again in another tab rotates the token.
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    try {
      return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
    } catch (e) {
      return "";
    }
  }

  function announce(text) {
    live.textContent = "";
    window.setTimeout(() => { live.textContent = text; }, 30);
  }

  function clauseTextEl(number) {
    return root.querySelector('.clause-text[data-clause="' + number + '"]');
  }

  function withLayer(url) {
    if (!layer) return url;
    return url + (url.includes("?") ? "&" : "?") + "coder=" + encodeURIComponent(layer);
  }

  function editable(target) {
    return target && (target.closest("input, textarea, select, [contenteditable=true]") !== null);
  }

  // --- offsets: DOM position <-> UTF-16 offset inside a clause text ----------------------

  function offsetIn(el, container, offset) {
    const r = document.createRange();
    r.setStart(el, 0);
    r.setEnd(container, offset);
    return r.toString().length;
  }

  function positionAt(el, offset) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let node, last = null;
    while ((node = walker.nextNode())) {
      if (offset <= node.data.length) return [node, offset];
      offset -= node.data.length;
      last = node;
    }
    return last ? [last, last.data.length] : [el, 0];
  }

  function rangeFor(piece) {
    const el = clauseTextEl(piece.clause);
    if (!el) return null;
    const r = document.createRange();
    r.setStart(...positionAt(el, piece.start));
    r.setEnd(...positionAt(el, piece.end));
    return r;
  }

  // A selection as the parts of clause texts it covers (text between clauses is not coded).
  function selectionFromRange(range) {
    const parts = [];
    for (const el of root.querySelectorAll(".clause-text")) {
      if (!range.intersectsNode(el)) continue;
      const length = el.textContent.length;
      const start = el.contains(range.startContainer) ? offsetIn(el, range.startContainer, range.startOffset) : 0;
      const end = el.contains(range.endContainer) ? offsetIn(el, range.endContainer, range.endOffset) : length;
      if (end > start) parts.push({ el, clause: el.dataset.clause, label: el.dataset.label, start, end });
    }
    if (!parts.length) return null;
    return makeSelection(parts);
  }

  function wholeClause(el) {
    return makeSelection([{ el, clause: el.dataset.clause, label: el.dataset.label, start: 0, end: el.textContent.length }]);
  }

  function makeSelection(parts) {
    const first = parts[0], last = parts[parts.length - 1];
    return {
      parts: parts.map((p) => ({ clause: p.clause, start: p.start, end: p.end })),
      quote: parts.map((p) => p.el.textContent.slice(p.start, p.end)).join(""),
      label: first.label === last.label ? first.label : first.label + " to " + last.label,
      whole: parts.length === 1 && first.start === 0 && first.end === first.el.textContent.length,
    };
  }

  function currentSelection() {
    const sel = window.getSelection();
    if (!sel.rangeCount || sel.isCollapsed) return null;
    return selectionFromRange(sel.getRangeAt(0));
  }

  // --- highlights of selections not yet saved (CSS Custom Highlight API) -----------------

  function redrawPendingHighlights() {
    if (!hasHighlights) return;
    const paint = (name, selections) => {
      const ranges = [];
      for (const s of selections) for (const p of s.parts) { const r = rangeFor(p); if (r) ranges.push(r); }
      if (ranges.length) CSS.highlights.set(name, new Highlight(...ranges));
      else CSS.highlights.delete(name);
    };
    paint("pc-pending", pending ? [pending] : []);
    paint("pc-saving", saving.map((s) => s.selection));
    paint("pc-failed", failed.map((f) => f.selection));
  }

  // --- the node picker --------------------------------------------------------------------

  function recentIds() {
    try {
      return JSON.parse(localStorage.getItem(root.dataset.recentKey) || "[]").filter((id) => paths.has(String(id)));
    } catch (e) {
      return [];
    }
  }

  function rememberRecent(nodeId) {
    const ids = [String(nodeId), ...recentIds().map(String).filter((id) => id !== String(nodeId))].slice(0, RECENT_MAX);
    try { localStorage.setItem(root.dataset.recentKey, JSON.stringify(ids)); } catch (e) { /* private mode */ }
  }

  function renderRecent() {
    recentGroup.querySelectorAll("[role=option]").forEach((o) => o.remove());
    const ids = recentIds();
    for (const id of ids) {
      const option = document.getElementById("pick-" + id).cloneNode(true);
      option.id = "pick-r-" + id;
      option.hidden = false;
      option.setAttribute("aria-selected", "false");
      option.style.setProperty("--depth", 0);
      option.classList.add("recent");
      option.querySelector(".pick-name").textContent = option.dataset.path;
      recentGroup.appendChild(option);
    }
    recentGroup.hidden = ids.length === 0;
  }

  function applyFilter() {
    const query = filterInput.value.trim().toLowerCase();
    const recents = Array.from(recentGroup.querySelectorAll("[role=option]"));
    recentGroup.hidden = query !== "" || recents.length === 0;
    visible = query ? [] : recents.slice();
    for (const option of treeOptions) {
      const match = !query || option.dataset.path.toLowerCase().includes(query) || option.dataset.shortcut.toLowerCase() === query;
      option.hidden = !match;
      if (match) visible.push(option);
    }
    for (const option of picker.querySelectorAll("[role=option]")) {
      option.querySelector(".pick-num").textContent = "";
      option.setAttribute("aria-selected", "false");
    }
    visible.slice(0, 9).forEach((option, i) => { option.querySelector(".pick-num").textContent = String(i + 1); });
    active = -1;
    setActive(visible.length ? 0 : -1);
  }

  function setActive(index) {
    if (active >= 0 && visible[active]) visible[active].setAttribute("aria-selected", "false");
    active = index;
    if (active >= 0 && visible[active]) {
      visible[active].setAttribute("aria-selected", "true");
      filterInput.setAttribute("aria-activedescendant", visible[active].id);
      scrollIntoList(visible[active]);
    } else {
      filterInput.removeAttribute("aria-activedescendant");
    }
    showDescription(active >= 0 && visible[active] ? visible[active].title : "");
  }

  // The codebook's definition of the highlighted node, as the coder decides (NVivo shows it
  // in the node's properties; here it follows the arrow keys and the filter).
  function showDescription(text) {
    const desc = document.getElementById("picker-desc");
    if (!desc) return;
    desc.textContent = text;
    desc.hidden = !text;
  }

  // Scroll the list only (scrollIntoView would scroll the page too).
  function scrollIntoList(option) {
    const top = option.offsetTop - listBox.offsetTop;
    if (top < listBox.scrollTop) listBox.scrollTop = top;
    else if (top + option.offsetHeight > listBox.scrollTop + listBox.clientHeight) {
      listBox.scrollTop = top + option.offsetHeight - listBox.clientHeight;
    }
  }

  // Below the anchor, or above it when there is no room below.
  function place(box, rect) {
    const viewport = document.documentElement;
    const height = box.offsetHeight, width = box.offsetWidth;
    const below = rect.bottom + 6 + height <= viewport.clientHeight || rect.top < height + 6;
    box.style.top = window.scrollY + (below ? rect.bottom + 6 : rect.top - height - 6) + "px";
    box.style.left = Math.max(8, Math.min(window.scrollX + rect.left, window.scrollX + viewport.clientWidth - width - 8)) + "px";
  }

  function openPicker(mode, { selection = null, form = null, title, rect, focus }) {
    if (!picker) return;
    if (mode === "code") closePopover(false);
    pickerMode = mode;
    pending = selection;
    changeForm = form;
    returnFocus = document.activeElement;
    picker.querySelector(".picker-title").textContent = title;
    filterInput.value = "";
    renderRecent();
    picker.hidden = false;
    place(picker, rect);
    applyFilter();
    redrawPendingHighlights();
    if (focus) filterInput.focus();
  }

  function closePicker(restoreFocus) {
    if (!picker || picker.hidden) return;
    picker.hidden = true;
    pending = null;
    pickerMode = null;
    changeForm = null;
    redrawPendingHighlights();
    if (restoreFocus && returnFocus && document.body.contains(returnFocus)) returnFocus.focus();
  }

  function choose(option) {
    if (!option) return;
    const nodeId = option.dataset.node;
    rememberRecent(nodeId);
    if (pickerMode === "code" && pending) {
      const selection = pending;
      closePicker(true);
      window.getSelection().removeAllRanges();
      save(selection, nodeId);
    } else if (pickerMode === "change" && changeForm) {
      const form = changeForm;
      form.querySelector("input[name=node]").value = nodeId;
      closePicker(true);
      htmx.trigger(form, "submit");
    }
  }

  function pickerTitle(selection) {
    return (selection.whole ? "Code clause " : "Code “" + abbreviate(selection.quote) + "” in ") + selection.label + " at:";
  }

  function abbreviate(text) {
    const chars = Array.from(text.replace(/\s+/g, " "));
    return chars.length > 24 ? chars.slice(0, 11).join("") + "…" + chars.slice(-11).join("") : chars.join("");
  }

  function optionByShortcut(key) {
    return treeOptions.find((o) => o.dataset.shortcut && o.dataset.shortcut.toLowerCase() === key.toLowerCase());
  }

  // --- saving a selection -----------------------------------------------------------------

  async function post(url, params) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        body: new URLSearchParams(params),
        headers: { "HX-Request": "true", "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
        redirect: "manual",
        signal: AbortSignal.timeout(SAVE_TIMEOUT_MS),
      });
    } catch (error) {
      const timeout = error && (error.name === "TimeoutError" || error.name === "AbortError");
      if (timeout) return { ok: false, message: "The server did not answer in time." };
      return { ok: false, retry: true, message: "The server could not be reached (are you offline?)." };
    }
    const body = await response.text().catch(() => "");
    if (response.type === "opaqueredirect") {
      return { ok: false, message: "Your session has expired: log in again (in another tab), then retry." };
    }
    if (!response.ok) {
      const plain = (response.headers.get("Content-Type") || "").startsWith("text/plain");
      const detail = plain && body ? body : "the server answered " + response.status + " " + response.statusText + ".";
      return { ok: false, retry: response.status >= 500, message: detail };
    }
    let triggers = {};
    try { triggers = JSON.parse(response.headers.get("HX-Trigger") || "{}"); } catch (e) { /* none */ }
    return { ok: true, html: body, triggers };
  }

  function applyResponse(html, triggers) {
    htmx.swap(document.body, html, { swapStyle: "none" });
    for (const [name, detail] of Object.entries(triggers)) htmx.trigger(document.body, name, detail);
  }

  async function save(selection, nodeId) {
    const first = selection.parts[0], last = selection.parts[selection.parts.length - 1];
    const params = {
      node: nodeId,
      start_clause: first.clause,
      start_offset: first.start,
      end_clause: last.clause,
      end_offset: last.end,
      quote: selection.quote,
    };
    const job = { selection, node: nodeId };
    saving.push(job);
    redrawPendingHighlights();
    let result = await post(withLayer(root.dataset.addUrl), params);
    // A server error or a lost connection may be passing (a restart, a lock timeout): try
    // again a little later before bothering the coder. Saving is idempotent.
    for (const delay of RETRY_DELAYS_MS) {
      if (result.ok || !result.retry) break;
      await new Promise((resolve) => window.setTimeout(resolve, delay));
      result = await post(withLayer(root.dataset.addUrl), params);
    }
    saving = saving.filter((j) => j !== job);
    if (result.ok && result.triggers["pc:coded"]) {
      applyResponse(result.html, result.triggers);
      failed = failed.filter((f) => f.selection !== selection);
      const n = result.triggers["pc:coded"].ids.length;
      announce("Coded " + selection.label + " at " + paths.get(String(nodeId)) + (n > 1 ? " (" + n + " references)." : "."));
    } else {
      const message = result.ok ? "the server's answer was not a saved reference." : result.message;
      failed = failed.filter((f) => f.selection !== selection);
      failed.push({ selection, node: nodeId, message });
    }
    renderAlert();
    redrawPendingHighlights();
  }

  function renderAlert() {
    if (!failed.length) {
      alertBox.hidden = true;
      return;
    }
    alertBox.querySelector(".wb-discard").textContent = "Discard";
    const last = failed[failed.length - 1];
    const what = failed.length === 1
      ? "“" + abbreviate(last.selection.quote) + "” (" + last.selection.label + ") at " + paths.get(String(last.node))
      : failed.length + " passages";
    alertBox.querySelector(".wb-alert-text").textContent =
      "Not saved: " + what + ". " + last.message + " The selection is kept: press Retry.";
    alertBox.querySelector(".wb-retry").hidden = false;
    alertBox.querySelector(".wb-discard").hidden = false;
    alertBox.hidden = false;
  }

  function showError(message) {
    alertBox.querySelector(".wb-alert-text").textContent = message;
    alertBox.querySelector(".wb-retry").hidden = failed.length === 0;
    alertBox.querySelector(".wb-discard").hidden = false;
    alertBox.querySelector(".wb-discard").textContent = failed.length ? "Discard" : "Dismiss";
    alertBox.hidden = false;
  }

  alertBox.querySelector(".wb-retry").addEventListener("click", () => {
    const jobs = failed;
    failed = [];
    renderAlert();
    for (const job of jobs) save(job.selection, job.node);
  });
  alertBox.querySelector(".wb-discard").addEventListener("click", () => {
    failed = [];
    renderAlert();
    alertBox.hidden = true;
    redrawPendingHighlights();
  });

  // --- references: cards in a popover -------------------------------------------------------

  function openCards(ids, anchor) {
    closePicker(false);
    popoverOpener = anchor;
    const url = withLayer(root.dataset.cardsUrl + "?" + ids.map((id) => "id=" + encodeURIComponent(id)).join("&"));
    htmx.ajax("GET", url, { target: popoverBody, swap: "innerHTML" }).then(() => {
      if (!popoverBody.querySelector(".ref-card")) return;
      popover.hidden = false;
      place(popover, anchor.getBoundingClientRect());
      const heading = popoverBody.querySelector("h3");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    });
  }

  function closePopover(restoreFocus) {
    if (popover.hidden) return;
    popover.hidden = true;
    popoverBody.innerHTML = "";
    if (restoreFocus && popoverOpener && document.body.contains(popoverOpener)) popoverOpener.focus();
  }

  popover.querySelector(".popover-close").addEventListener("click", () => closePopover(true));

  popover.addEventListener("click", (event) => {
    const button = event.target.closest(".change-node");
    if (!button) return;
    openPicker("change", {
      form: button.closest("form"),
      title: "Change the node of " + button.dataset.label + " to:",
      rect: button.getBoundingClientRect(),
      focus: true,
    });
  });

  function flash(ids) {
    for (const id of ids) {
      for (const mark of root.querySelectorAll('mark[data-refs~="' + id + '"]')) {
        mark.classList.remove("flash");
        void mark.offsetWidth; // restart the animation
        mark.classList.add("flash");
      }
    }
  }

  // --- mouse ---------------------------------------------------------------------------------

  document.addEventListener("mouseup", (event) => {
    if (!canCode || event.button !== 0) return;
    if (picker && picker.contains(event.target)) return;
    if (popover.contains(event.target)) return;
    const selection = currentSelection();
    if (!selection) return;
    const range = window.getSelection().getRangeAt(0);
    openPicker("code", { selection, title: pickerTitle(selection), rect: range.getBoundingClientRect(), focus: false });
  });

  root.addEventListener("click", (event) => {
    const label = event.target.closest("button.clause-label");
    if (label) {
      const el = clauseTextEl(label.dataset.clause);
      const selection = wholeClause(el);
      openPicker("code", { selection, title: pickerTitle(selection), rect: label.getBoundingClientRect(), focus: true });
      return;
    }
    const entry = event.target.closest(".ref-entry");
    if (entry) {
      const mark = root.querySelector('mark[data-refs~="' + entry.dataset.ref + '"]');
      if (mark) mark.scrollIntoView({ block: "center" });
      flash([entry.dataset.ref]);
      openCards([entry.dataset.ref], entry);
      return;
    }
    const mark = event.target.closest("mark[data-refs]");
    if (mark && window.getSelection().isCollapsed) openCards(mark.dataset.refs.split(" "), mark);
  });

  if (picker) {
    // Keep the page's selection when clicking an option.
    picker.addEventListener("mousedown", (event) => {
      if (event.target.closest("[role=option]")) event.preventDefault();
    });
    picker.addEventListener("click", (event) => choose(event.target.closest("[role=option]")));
    filterInput.addEventListener("input", applyFilter);
    filterInput.addEventListener("keydown", (event) => {
      if (event.isComposing) return;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (!visible.length) return;
        const step = event.key === "ArrowDown" ? 1 : -1;
        setActive((active + step + visible.length) % visible.length);
      } else if (event.key === "Enter") {
        event.preventDefault();
        choose(visible[active]);
      } else if (event.key === "Escape") {
        event.preventDefault();
        closePicker(true);
      } else if (/^[1-9]$/.test(event.key) && filterInput.value === "") {
        event.preventDefault();
        choose(visible[Number(event.key) - 1]);
      } else if (event.key === "Tab") {
        closePicker(false);
      }
    });
  }

  document.addEventListener("mousedown", (event) => {
    if (picker && !picker.hidden && !picker.contains(event.target)) closePicker(false);
    if (!popover.hidden && !popover.contains(event.target) && !(picker && picker.contains(event.target))) closePopover(false);
  });

  // --- keyboard --------------------------------------------------------------------------------

  const MOVES = {
    ArrowLeft: ["backward", "character"],
    ArrowRight: ["forward", "character"],
    ArrowUp: ["backward", "line"],
    ArrowDown: ["forward", "line"],
    Home: ["backward", "lineboundary"],
    End: ["forward", "lineboundary"],
  };

  function caretInto(el) {
    const sel = window.getSelection();
    if (sel.rangeCount && el.contains(sel.anchorNode)) return;
    sel.collapse(...positionAt(el, 0));
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    const plain = !event.ctrlKey && !event.metaKey && !event.altKey;
    if (event.key === "Escape") {
      if (picker && !picker.hidden) { closePicker(true); event.preventDefault(); return; }
      if (!popover.hidden) { closePopover(true); event.preventDefault(); return; }
    }
    if (!canCode || editable(event.target)) return;

    // The picker is open but not focused (it opened on a mouse selection).
    if (picker && !picker.hidden && plain) {
      if (/^[1-9]$/.test(event.key)) { event.preventDefault(); choose(visible[Number(event.key) - 1]); return; }
      if (event.key === "Enter") { event.preventDefault(); filterInput.focus(); return; }
      const option = event.key.length === 1 ? optionByShortcut(event.key) : null;
      if (option) { event.preventDefault(); choose(option); return; }
    }

    const textEl = event.target.closest && event.target.closest(".clause-text");
    if (textEl && MOVES[event.key] && !event.metaKey) {
      // Select with the keyboard: Shift+arrows extend (Ctrl by word), arrows move.
      event.preventDefault();
      caretInto(textEl);
      const [direction, unit] = MOVES[event.key];
      const granularity = event.ctrlKey && unit === "character" ? "word" : unit;
      window.getSelection().modify(event.shiftKey ? "extend" : "move", direction, granularity);
      return;
    }
    if (!plain) return;
    const selection = currentSelection();
    if (event.key === "Enter" && textEl) {
      event.preventDefault();
      const chosen = selection || wholeClause(textEl);
      const rect = selection ? window.getSelection().getRangeAt(0).getBoundingClientRect() : textEl.getBoundingClientRect();
      openPicker("code", { selection: chosen, title: pickerTitle(chosen), rect, focus: true });
      return;
    }
    if (selection && event.key.length === 1) {
      const option = optionByShortcut(event.key);
      if (option) {
        event.preventDefault();
        rememberRecent(option.dataset.node);
        window.getSelection().removeAllRanges();
        save(selection, option.dataset.node);
      }
    }
  });

  // --- htmx: cards, memo, delete/undo, done, the side panel ----------------------------------------

  document.body.addEventListener("htmx:configRequest", (event) => {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  document.body.addEventListener("htmx:beforeSwap", (event) => {
    // A card answered 409 (changed elsewhere) or 400 (bad input) carries the message to show.
    const status = event.detail.xhr.status;
    const type = event.detail.xhr.getResponseHeader("Content-Type") || "";
    if ((status === 409 || status === 400) && type.startsWith("text/html")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.body.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    const type = xhr.getResponseHeader("Content-Type") || "";
    const text = type.startsWith("text/plain") && xhr.responseText ? xhr.responseText : "The server answered " + xhr.status + " " + xhr.statusText + "; nothing was changed.";
    showError(text);
  });

  document.body.addEventListener("htmx:sendError", () => {
    showError("The server could not be reached; nothing was changed. Try again.");
  });

  document.body.addEventListener("htmx:oobAfterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "wb-toast") {
      // The event's target is the element that was replaced; read its successor.
      const toast = document.getElementById("wb-toast");
      const text = toast.querySelector("span") ? toast.querySelector("span").textContent.trim() : "";
      if (text) announce(text + (toast.querySelector(".undo") ? " Undo is available." : ""));
    }
    redrawPendingHighlights();
  });

  document.body.addEventListener("pc:coded", (event) => {
    window.setTimeout(() => flash(event.detail.ids || []), 0);
  });

  document.body.addEventListener("pc:deleted", () => {
    // After the swap: close the card and put focus on Undo.
    window.setTimeout(() => {
      if (!popoverBody.querySelector(".ref-card")) closePopover(false);
      const undo = document.querySelector("#wb-toast .undo");
      if (undo) undo.focus();
    }, 0);
  });

  // Links from the node view (#ref-<id>) point at a reference: scroll to it and show it.
  const hash = window.location.hash.match(/^#ref-(\d+)$/);
  if (hash) {
    const mark = root.querySelector('mark[data-refs~="' + hash[1] + '"]');
    if (mark) mark.scrollIntoView({ block: "center" });
    flash([hash[1]]);
  }

  root.dataset.ready = "true";
  if (window.performance && performance.mark) performance.mark("pc:workbench-ready"); // read by bench/workbench.py
})();
