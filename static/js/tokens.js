// The account page's tokens: copy a new token, and confirm before revoking one.
// Plain DOM glue (no logic worth a unit test); loaded as a module, so the CSP needs no inline script.

const status = document.getElementById("copy-status");

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const field = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(field.value);
    } catch {
      // No clipboard permission (an older browser, a plain-http address): copy the selection.
      field.select();
      document.execCommand("copy");
    }
    if (status) status.textContent = "Copied. Paste it where your script or client keeps its secrets.";
  });
}

for (const form of document.querySelectorAll("form.revoke-token")) {
  form.addEventListener("submit", (event) => {
    const name = form.dataset.name;
    if (!window.confirm(`Revoke “${name}”? Anything still using it will be refused at once.`)) {
      event.preventDefault();
    }
  });
}
