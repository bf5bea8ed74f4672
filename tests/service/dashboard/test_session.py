"""Session cookies, CSRF tokens, the login throttle and the settings that guard them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.dashboard import session as dashboard_session
from service.dashboard.quality import CHALLENGERS, REGRET_GOAL, goals
from service.dashboard.session import LoginThrottle, Sessions, signing_secret
from service.models import ApiKey
from service.settings import Settings


def _key(key_id: int = 7, key_hash: str = "ab" * 32) -> ApiKey:
    return ApiKey(id=key_id, owner_id=1, prefix="trk_abcdefgh", key_hash=key_hash)


def test_a_session_names_the_key_never_holds_it_and_expires(monkeypatch):
    sessions = Sessions("s" * 40, ttl_s=60)
    key = _key()
    cookie = sessions.issue(key)
    read = sessions.read(cookie)
    assert read.key_id == 7 and sessions.matches(read, key)
    assert key.key_hash not in cookie
    assert not sessions.matches(read, _key(key_hash="cd" * 32))  # another key with that id
    assert sessions.read(cookie + "x") is None
    assert Sessions("t" * 40, ttl_s=60).read(cookie) is None  # another secret
    import itsdangerous.timed

    later = itsdangerous.timed.time.time() + 61
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    assert sessions.read(cookie) is None


def test_csrf_tokens_belong_to_one_session():
    sessions = Sessions("s" * 40, ttl_s=60)
    one, two = (sessions.read(sessions.issue(_key())) for _ in range(2))
    assert sessions.csrf_valid(one, sessions.csrf_token(one))
    assert not sessions.csrf_valid(one, sessions.csrf_token(two))
    assert not sessions.csrf_valid(one, None)


def test_the_throttle_counts_failures_in_a_sliding_window(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(dashboard_session.time, "monotonic", lambda: now[0])
    throttle = LoginThrottle(attempts=2, window_s=60)
    throttle.failed("a")
    assert throttle.wait_s("a") == 0
    throttle.failed("a")
    assert throttle.wait_s("a") == pytest.approx(60) and throttle.wait_s("b") == 0
    now[0] += 61
    assert throttle.wait_s("a") == 0
    throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.wait_s("a") == 0


def test_development_generates_one_secret_per_data_folder(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path)
    first = signing_secret(settings)
    assert len(first) >= 32 and signing_secret(settings) == first
    assert (tmp_path / "dashboard.secret").stat().st_mode & 0o077 == 0


def test_production_refuses_a_default_or_short_secret(tmp_path):
    with pytest.raises(dashboard_session.DashboardDisabled):
        signing_secret(Settings(_env_file=None, env="production", data_dir=tmp_path))
    with pytest.raises(ValidationError, match="TASKREC_DASHBOARD_SECRET"):
        Settings(_env_file=None, env="production", dashboard_secret="short")
    configured = Settings(_env_file=None, env="production", dashboard_secret="x" * 40)
    assert signing_secret(configured) == "x" * 40


def test_the_goals_are_the_results_pages():
    from workers.research import report

    assert (CHALLENGERS, REGRET_GOAL) == (report.CHALLENGERS, report.REGRET_GOAL)


def test_goals_compare_learned_with_each_challenger():
    records = {
        "learned": {"rho": 2.0, "regret@3": 1.5},
        "semb": {"rho": 3.0, "regret@3": 1.0},
        "taskemb": {"rho": 1.5, "regret@3": 2.0},
    }
    found = {g.text: g.met for g in goals(records)}
    assert found == {
        "learned beats semb on ρ": True,
        "learned beats taskemb on ρ": False,
        "learned beats semb on Regret@3": False,
        "learned beats taskemb on Regret@3": True,
        "learned Regret@3 ≤ 1%": False,
    }
