from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("Users need an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in. Identified by email; SSO fills the name and groups."""

    email = models.EmailField("email address", unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_staff = models.BooleanField(
        default=False, help_text="May open the Django admin and manage knowledge."
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email.split("@")[0]


class SlackIdentity(models.Model):
    """The link between a Slack user and an account.

    Linked only on proof (``linked_at`` set): automatically when Slack vouches for the email
    (confirmed, full member of our workspace, allowed domain), or by the person signing in
    through a one-time link. ``user`` without ``linked_at`` is a provisional public-only
    account (``SLACK_UNLINKED_USERS=public``) or a link made before these rules, re-checked."""

    class LinkedHow(models.TextChoices):
        EMAIL = "email", "Confirmed email from Slack"
        LINK = "link", "Signed in through a link"
        PROVISIONAL = "provisional", "Provisional public-only account"

    team_id = models.CharField(max_length=32)
    slack_user_id = models.CharField(max_length=32)
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="slack_identities"
    )
    email = models.EmailField(blank=True)
    display_name = models.CharField(max_length=200, blank=True)
    linked_at = models.DateTimeField(null=True, blank=True)
    linked_how = models.CharField(max_length=16, choices=LinkedHow.choices, blank=True)
    link_nonce = models.CharField(
        max_length=64,
        blank=True,
        help_text="The one link that may still bind it; emptied when used.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team_id", "slack_user_id"], name="slack_identity_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.slack_user_id}@{self.team_id} -> {self.user_id}"


class AuditEvent(models.Model):
    """Who did what where trust matters. Written by ``accounts.audit.audit_record`` only;
    the database refuses to change a row once written (migration 0003), and the admin shows
    them read-only. Deleting old rows is a retention decision, not an edit."""

    class Action(models.TextChoices):
        CONVERSATION_VIEWED = "conversation.viewed", "Admin opened a person's conversation"
        MEMORY_VIEWED = "memory.viewed", "Admin opened a person's memory"
        MEMORY_DELETED = "memory.deleted", "Admin deleted a person's memory item"
        COLLECTION_ACCESS_CHANGED = "collection.access_changed", "Collection access changed"
        COLLECTION_DELETED = "collection.deleted", "Collection deleted"
        SOURCE_MOVED = "source.moved", "Source moved to another collection"
        SOURCE_DELETED = "source.deleted", "Source deleted"
        SLACK_LINKED = "slack.linked", "Slack identity linked"
        SLACK_LINK_REFUSED = "slack.link_refused", "Slack identity not linked automatically"
        SSO_GROUPS_GRANTED = "sso.groups_granted", "SSO granted groups"
        SSO_GROUPS_REVOKED = "sso.groups_revoked", "SSO revoked groups"
        SSO_FLAGS_CHANGED = "sso.flags_changed", "SSO changed staff or admin rights"
        TOKEN_CREATED = "token.created", "Personal access token created"
        TOKEN_REVOKED = "token.revoked", "Personal access token revoked"
        RETENTION_APPLIED = "retention.applied", "Retention policy applied"
        USER_ERASED = "user.erased", "Person and their data erased"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who did it (empty: the system, e.g. a sign-in or a task).",
    )
    actor_email = models.CharField(
        max_length=254, blank=True, help_text="Kept if the actor is deleted."
    )
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    subject = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The person whose data or rights it was about, when there is one.",
    )
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_email or 'system'} {self.action}"


class AccessToken(models.Model):
    """A personal access token: a person's own credential for scripts and other clients
    (the OpenAI-compatible API, the MCP server). Written by ``accounts.tokens`` only.

    The secret is shown once and never stored: only its SHA-256 (a random 256-bit secret needs
    no slow hash) and a short ``prefix`` to recognise it by. A token never reads more than its
    owner: the doors intersect its narrowing with what the owner may read now, per request
    (``knowledge.tokens.authenticate``).

    ``collections`` is a string reference so that accounts imports nothing from knowledge; the
    database keeps it true (deleting a collection deletes its rows here). ``narrowed`` says the
    token was limited to chosen collections: a narrowed token whose collections were all
    deleted reads nothing, it never falls back to everything."""

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=16, db_index=True, help_text="The token's first characters, for display."
    )
    secret_hash = models.CharField(
        max_length=64, unique=True, help_text="SHA-256 of the token (hex); the token is not kept."
    )
    narrowed = models.BooleanField(
        default=False, help_text="Limited to the chosen collections (else: all its owner reads)."
    )
    collections = models.ManyToManyField(
        "knowledge.Collection",
        blank=True,
        related_name="+",
        help_text="With 'narrowed': the only collections it may read, if its owner still can.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
