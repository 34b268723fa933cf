// Progressive enhancement only: every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Confirm destructive actions.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // Hide the fields of a switched-off group (TLS offload, re-encryption).
  for (const toggle of document.querySelectorAll("input[data-toggles]")) {
    const form = toggle.form;
    const show = () => {
      for (const field of form.querySelectorAll(`[data-group="${toggle.dataset.toggles}"]`)) {
        field.classList.toggle("hidden", !toggle.checked);
      }
    };
    toggle.addEventListener("change", show);
    show();
  }

  // Dashboard: fetch the figures again every few seconds.
  const live = document.getElementById("live");
  if (live) {
    const seconds = Number(live.dataset.seconds) || 3;
    const refresh = async () => {
      try {
        const answer = await fetch(live.dataset.refresh, { credentials: "same-origin" });
        if (answer.redirected || !answer.ok) return;
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        if (page.body) live.innerHTML = page.body.innerHTML;
      } catch (error) {
        // The next round tries again; a restart of the appliance must not break the page.
      }
    };
    window.setInterval(refresh, seconds * 1000);
  }
});
