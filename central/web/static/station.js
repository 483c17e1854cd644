// The station's live view: one EventSource per page (server-sent events woken by the ingest),
// the page's parts updated in place with textContent (never innerHTML). No inline script: the
// content security policy allows only this file.
"use strict";
(function () {
  var root = document.getElementById("station");
  if (!root || !window.EventSource) { return; }
  var stage = document.getElementById("stage");
  var lastCode = document.getElementById("last-code");
  var lastText = document.getElementById("last-text");
  var last = document.getElementById("last");
  var nextCode = document.getElementById("next-code");
  var sendNext = document.getElementById("send-next");
  var liveNote = document.getElementById("live-note");

  function setDisabled(online) {
    var buttons = root.querySelectorAll("#send-next, #send-code, .send-one");
    for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = !online; }
  }

  function apply(s) {
    stage.textContent = s.stage_text;
    var sent = document.getElementById("sent");
    if (sent && s.stage !== "walking") { sent.hidden = true; }  // that child has walked
    stage.className = "stage " + s.stage;
    if (s.last) {
      lastCode.textContent = s.last.code;
      lastText.textContent = s.last.text;
      last.className = "last " + s.last.css;
      last.setAttribute("data-result", s.last.result_id);
    }
    nextCode.value = s.next || "";
    sendNext.textContent = s.next ? "Next child: " + s.next : "No child left on this list";
    setDisabled(s.online);
    if (!s.next) { sendNext.disabled = true; }
    for (var i = 0; i < s.codes.length; i++) {
      var r = s.codes[i];
      var row = root.querySelector('tr[data-code="' + r.code + '"]');
      if (!row) { continue; }
      row.className = r.css;
      row.querySelector(".outcome").textContent = r.status;
      row.querySelector(".retakes").textContent = String(r.retakes);
    }
    root.setAttribute("data-updated", String(Date.now()));
  }

  var source = new EventSource(root.getAttribute("data-events"));
  source.addEventListener("state", function (e) { apply(JSON.parse(e.data)); });
  source.onopen = function () { liveNote.textContent = "Live: this page updates by itself."; };
  source.onerror = function () { liveNote.textContent = "Live updates interrupted: reconnecting..."; };

  // Scanning a card's QR code where the browser has a camera and BarcodeDetector.
  var scan = document.getElementById("scan");
  var video = document.getElementById("scan-video");
  var input = document.getElementById("code-input");
  if (window.BarcodeDetector && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    scan.hidden = false;
    scan.addEventListener("click", function () {
      var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
        video.srcObject = stream;
        video.hidden = false;
        video.play();
        var stop = function () { stream.getTracks().forEach(function (t) { t.stop(); }); video.hidden = true; };
        var look = function () {
          detector.detect(video).then(function (codes) {
            if (codes.length) { input.value = codes[0].rawValue; stop(); input.focus(); }
            else { window.requestAnimationFrame(look); }
          }, stop);
        };
        look();
      }, function () { scan.textContent = "Camera not available"; scan.disabled = true; });
    });
  }
})();
