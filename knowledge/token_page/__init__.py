"""The account page's personal access tokens: list, create (shown once), revoke.

In the knowledge app because a token's scope is knowledge (collections); the account page
(accounts' view, served by ``assistant.views.account``) includes the section with the rows
``selectors.token_rows_for`` gives, and its forms post here (``urls``).
"""
