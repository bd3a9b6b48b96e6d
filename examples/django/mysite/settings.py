"""Settings for the pgai_migrate Django example. The database is taken from
the libpq environment (PGHOST, PGPORT, PGUSER) and PGAI_MIGRATE_DJANGO_DB."""

import os

SECRET_KEY = "example-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django.contrib.postgres", "blog"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGAI_MIGRATE_DJANGO_DB", "blog"),
        "HOST": os.environ.get("PGHOST", ""),
        "PORT": os.environ.get("PGPORT", ""),
        "USER": os.environ.get("PGUSER", ""),
        # `manage.py test` builds test_<NAME> by running the migrations, and
        # blog/migrations/0001 creates the extension there. A role that may
        # not CREATE EXTENSION uses a template that has it instead:
        # "TEST": {"TEMPLATE": "template_with_pgai_migrate"},
    }
}
