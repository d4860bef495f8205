"""The beat schedule's wiring, without starting processes: every entry names a task the
workers know (on the queue that serves it), and the launcher's `run` starts one beat whose
state lives under VAR_DIR. A real beat ticking through a real worker: tests/e2e/test_launcher.py."""

from django.conf import settings

from assistant.devstack.launcher import beat_argv
from assistant.project.celery import app


def test_every_scheduled_entry_names_a_task_the_workers_register():
    app.loader.import_default_modules()
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "knowledge.refresh_due" in names
    assert names <= set(app.tasks), names - set(app.tasks)
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert float(entry["schedule"]) > 0


def test_the_refresh_tick_and_its_checks_run_on_the_ingest_queue():
    router = app.amqp.router
    for name in ("knowledge.refresh_due", "knowledge.refresh_source", "knowledge.refresh_sitemap"):
        assert router.route({}, name)["queue"].name == "ingest"


def test_the_launcher_starts_one_beat_with_its_schedule_under_var_dir(tmp_path):
    argv = beat_argv(tmp_path / "bin", tmp_path / "var")

    assert argv == [
        str(tmp_path / "bin" / "celery"),
        *("-A", "assistant", "beat", "--schedule", str(tmp_path / "var" / "celerybeat-schedule")),
        *("--loglevel", "INFO"),
    ]
