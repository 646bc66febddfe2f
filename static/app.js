// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="#selector">.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    var el = document.querySelector(btn.getAttribute("data-copy"));
    if (!el) return;
    var text = el.textContent.trim();
    // What was copied, for people using assistive tools and for the browser tests.
    btn.setAttribute("data-copied", text);
    var done = function () {
      var label = btn.textContent;
      btn.textContent = "Copied";
      btn.classList.add("copied");
      setTimeout(function () { btn.textContent = label; btn.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(el); });
    } else {
      selectText(el);
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
    }
  });

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // Select-all checkboxes: <input type="checkbox" data-select-all="fieldname" hidden>.
  document.querySelectorAll("[data-select-all]").forEach(function (all) {
    var name = all.getAttribute("data-select-all");
    var boxes = function () {
      return all.form ? all.form.querySelectorAll('input[type="checkbox"][name="' + name + '"]') : [];
    };
    all.hidden = false;
    all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
    });
  });
  // Confirmation panels (<details class="confirm">): one open at a time; Escape or a click
  // outside closes them, and Escape gives the focus back to the button that opened it.
  var confirms = function () { return document.querySelectorAll("details.confirm[open]"); };
  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (!d.matches || !d.matches("details.confirm") || !d.open) return;
    confirms().forEach(function (o) { if (o !== d) o.open = false; });
  }, true);
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") return;
    confirms().forEach(function (d) {
      d.open = false;
      var s = d.querySelector("summary");
      if (s) s.focus();
    });
  });
  document.addEventListener("click", function (ev) {
    confirms().forEach(function (d) { if (!d.contains(ev.target)) d.open = false; });
  });

  // Wide tables scroll inside their card; say so, but only when they do.
  var hints = function () {
    document.querySelectorAll(".tablewrap").forEach(function (w) {
      var hint = w.nextElementSibling;
      if (!hint || !hint.classList.contains("scroll-hint")) {
        hint = document.createElement("p");
        hint.className = "scroll-hint";
        hint.textContent = "Scroll sideways for more columns →";
        w.parentNode.insertBefore(hint, w.nextSibling);
      }
      w.classList.toggle("overflowing", w.scrollWidth > w.clientWidth + 1);
    });
  };
  hints();
  window.addEventListener("resize", hints);

  // A form shown again with errors: the first field in error gets the focus.
  var bad = document.querySelector('[aria-invalid="true"]');
  if (bad) bad.focus();
})();
