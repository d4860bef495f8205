"""Script injection: every page carries a Content-Security-Policy that lets only our own files
run, and every page still works under it, in a real Chromium against a real Daphne.

If a sanitiser ever lets markup through (model output, document text, a file name), the policy
is the second wall: no inline script, no event-handler attribute, no eval, nothing from
elsewhere. A page that needed any of these would report a violation here.
"""

from __future__ import annotations

import pytest

from assistant.models import Conversation, Message
from tests.support.browser import PASSWORD, log_in
from tests.support.knowledge import index_text, make_collection

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

HANDBOOK = """# Travel policy

## Booking flights
Employees book flights through the travel desk at least fourteen days before departure.
"""

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`
    + ` at ${e.sourceFile}:${e.lineNumber} (${(e.sample || '').slice(0, 80)})`);
});
"""


@pytest.fixture
def csp_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.csp_console = []
    page.on(
        "console",
        lambda m: page.csp_console.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield page
    context.close()


@pytest.fixture
def world(make_user):
    admin = make_user(email="root@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    collection = make_collection("Handbook", everyone=True)
    source = index_text(collection, "travel.md", HANDBOOK, user=admin)
    conversation = Conversation.objects.create(owner=admin, title="Flights")
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="How do I book a flight?"
    )
    Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        reply_to=question,
        content="Through the **travel desk**, at least `14` days before.\n\n- one\n- two",
    )
    return admin, collection, source, conversation


def _visit(page, url: str) -> list[str]:
    """Loads ``url``; returns the problems found (missing header, violations)."""
    response = page.goto(url)
    page.wait_for_load_state("networkidle")
    problems = []
    policy = response.headers.get("content-security-policy", "")
    if "script-src 'self'" not in policy or "default-src 'self'" not in policy:
        problems.append(f"{url}: no policy ({policy!r})")
    problems += [f"{url}: {v}" for v in page.evaluate("window.__cspViolations || []")]
    problems += [f"{url}: console: {text}" for text in page.csp_console]
    page.csp_console.clear()
    return problems


def test_every_page_loads_under_the_policy_with_no_violation(daphne_server, csp_page, world):
    admin, collection, source, conversation = world
    base = daphne_server
    problems = _visit(csp_page, base + "/accounts/login/")

    # Signing in waits for the chat socket: connect-src 'self' admits our own ws:// in Chromium.
    log_in(csp_page, base, admin.email)
    problems += [f"chat: {v}" for v in csp_page.evaluate("window.__cspViolations")]
    pages = [
        "/",
        f"/c/{conversation.pk}",
        "/knowledge/",
        f"/knowledge/sources/{source.pk}/",
        "/memory/",
        "/accounts/email/",
        "/accounts/password/change/",
        "/accounts/logout/",  # the confirmation page
        "/admin/",
        "/admin/knowledge/source/",
        f"/admin/knowledge/source/{source.pk}/change/",
        "/admin/knowledge/collection/",
        f"/admin/knowledge/collection/{collection.pk}/change/",
        "/admin/knowledge/collection/add/",
    ]
    for path in pages:
        problems += _visit(csp_page, base + path)
    # The conversation really rendered (its scripts ran under the policy).
    csp_page.goto(base + f"/c/{conversation.pk}")
    csp_page.get_by_text("travel desk").first.wait_for()
    assert problems == [], "\n".join(problems)


def test_the_account_page_loads_under_the_policy_with_no_violation(daphne_server, csp_page, world):
    admin = world[0]
    log_in(csp_page, daphne_server, admin.email)
    problems = _visit(csp_page, daphne_server + "/accounts/me/")
    assert problems == [], "\n".join(problems)


def test_an_injected_inline_script_an_event_handler_and_eval_do_not_run(
    daphne_server, csp_page, world
):
    admin, _, _, conversation = world
    log_in(csp_page, daphne_server, admin.email)
    csp_page.goto(daphne_server + f"/c/{conversation.pk}")
    outcome = csp_page.evaluate(
        """async () => {
          // What a sanitiser slip would insert into the page.
          const script = document.createElement('script');
          script.textContent = 'window.__pwned = "inline script"';
          document.body.appendChild(script);
          const holder = document.createElement('div');
          holder.innerHTML = '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" '
            + 'onload="window.__pwned = \\'event handler\\'">';
          document.body.appendChild(holder);
          // A string handed to a timer is compiled in the page, like eval (this evaluate()
          // itself runs from the DevTools protocol, which the policy does not cover).
          setTimeout('window.__pwned = "string timer"', 0);
          await new Promise((resolve) => setTimeout(resolve, 300));
          return {pwned: window.__pwned || null, violations: window.__cspViolations};
        }"""
    )
    assert outcome["pwned"] is None
    # Each was refused and reported (so a CSP_REPORT_URI would hear of it).
    directives = " ".join(outcome["violations"])
    assert directives.count("script-src") >= 3, outcome["violations"]
    assert "eval" in directives, outcome["violations"]
