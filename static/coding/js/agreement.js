// Agreement drill-down: "code anew" turns a text selection inside a clause into offsets for
// the form. The server counts Unicode code points; the browser's selection offsets count
// UTF-16 code units, so the text before and inside the selection is counted with
// Array.from (one entry per code point), e.g. 𠀀 is 1, not 2.
(function () {
  "use strict";

  function codePoints(text) {
    return Array.from(text).length;
  }

  function anewBox(node) {
    const element = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
    return element ? element.closest(".anew-text") : null;
  }

  function takeSelection() {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return;
    const range = selection.getRangeAt(0);
    const box = anewBox(range.startContainer);
    if (!box || anewBox(range.endContainer) !== box) return;
    const before = document.createRange();
    before.selectNodeContents(box);
    before.setEnd(range.startContainer, range.startOffset);
    const start = Number(box.dataset.start) + codePoints(before.toString());
    const end = start + codePoints(range.toString());
    if (end <= start) return;
    const form = box.closest("form");
    form.elements.start.value = String(start);
    form.elements.end.value = String(end);
    const shown = form.querySelector(".anew-range");
    if (shown) shown.textContent = "the selected passage (" + (end - start) + " characters)";
  }

  document.addEventListener("mouseup", takeSelection);
  document.addEventListener("keyup", takeSelection);
})();
