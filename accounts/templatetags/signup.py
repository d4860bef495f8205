"""``{% signup_is_open as open %}``: whether this request may create a local account.

allauth puts a sign-up URL in every entrance page's context whether or not sign-up is open;
pages ask this instead, so nobody is offered a form that only says "closed".
"""

from allauth.account.adapter import get_adapter
from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def signup_is_open(context) -> bool:
    request = context.get("request")
    return request is not None and bool(get_adapter(request).is_open_for_signup(request))
