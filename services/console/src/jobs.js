// Live view of one training job: follows its server-sent events and redraws the loss curve.
// The page works without this script (reload it); the CSP allows only scripts from this origin.
"use strict";
(function () {
  const el = document.getElementById("job");
  if (!el || el.dataset.finished === "true") return;
  const id = el.dataset.id;
  const img = document.getElementById("loss-curve");
  const state = document.getElementById("job-state");
  const progress = document.getElementById("job-progress");
  const events = new EventSource("/api/v1/jobs/" + id + "/events");
  let epochs = 0;
  events.addEventListener("progress", (e) => {
    const ev = JSON.parse(e.data);
    epochs = ev.point.epoch;
    state.textContent = ev.state;
    progress.textContent = epochs + " epochs run · train loss " + ev.point.train_loss.toFixed(4) +
      " · validation loss " + ev.point.val_loss.toFixed(4);
    img.src = "/jobs/" + id + "/loss.svg?e=" + epochs;
  });
  events.addEventListener("state", (e) => {
    const ev = JSON.parse(e.data);
    state.textContent = ev.state;
    if (ev.state !== "queued" && ev.state !== "running") {
      events.close();
      window.location.reload();
    }
  });
})();
