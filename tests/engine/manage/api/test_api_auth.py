"""Authentication: Basic, API tokens, session cookie + CSRF, login rate limiting, users."""

from __future__ import annotations

import re

from support.api_client import ADMIN_PASSWORD

OPEN = {("get", "/api/v1/health"), ("get", "/api/v1/openapi.json"), ("post", "/api/v1/session")}


def concrete(path: str) -> str:
    values = {
        "name": "web",
        "sub": "owa",
        "server": "127.0.0.1:9000",
        "cert": "edge",
        "number": "1",
        "user": "admin",
        "token": "abc",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def test_every_operation_but_the_open_ones_requires_authentication(api):
    anonymous = api.anonymous()
    document = anonymous.get("/api/v1/openapi.json").json()
    operations = [(method, path) for path, item in document["paths"].items() for method in item]
    assert len(operations) > 40
    for method, path in operations:
        answer = anonymous.request(method.upper(), concrete(path), json={})
        if (method, path) in OPEN:
            assert answer.status_code != 401, (method, path)
        else:
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert answer.json()["field"] == "Authorization"
            assert "Basic" in answer.headers["WWW-Authenticate"]
    assert anonymous.get("/api/v1/health").json()["status"] == "ok"
    assert api.version() == 0


def test_basic_auth(api):
    assert api.client().get("/api/v1/virtual-services").status_code == 200
    wrong = api.client(auth=("admin", "not-the-password"))
    assert wrong.get("/api/v1/virtual-services").status_code == 401
    assert api.client(auth=("nobody", ADMIN_PASSWORD)).get("/api/v1/users").status_code == 401
    garbled = api.anonymous().get("/api/v1/users", headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401


def test_api_token_is_shown_once_works_and_can_be_revoked(api, admin):
    created = admin.post("/api/v1/tokens", json={"name": "backup script"})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    listed = admin.get("/api/v1/tokens")
    assert [t["name"] for t in listed.json()] == ["backup script"]
    assert token not in listed.text

    script = api.client(token=token)
    assert script.get("/api/v1/config").status_code == 200
    # no CSRF token needed for a bearer token, even on an unsafe method
    added = script.post(
        "/api/v1/virtual-services",
        json={"name": "web", "address": "127.0.0.1", "ports": [8080]},
    )
    assert added.status_code == 201
    assert admin.get("/api/v1/tokens").json()[0]["last_used"] is not None

    token_id = created.json()["id"]
    assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    assert script.get("/api/v1/config").status_code == 401
    assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 404
    forged = api.client(token=token[:-4] + "AAAA")
    assert forged.get("/api/v1/config").status_code == 401


def test_session_cookie_needs_the_csrf_token_on_unsafe_methods(api):
    browser = api.anonymous()
    login = browser.post("/api/v1/session", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 201, login.text
    cookie = login.set_cookies()["passerelle_session"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    csrf_cookie = login.set_cookies()["passerelle_csrf"].lower()
    assert "httponly" not in csrf_cookie and "secure" in csrf_cookie
    csrf = login.json()["csrf_token"]
    assert browser.cookies["passerelle_csrf"] == csrf

    assert browser.get("/api/v1/virtual-services").status_code == 200
    assert browser.get("/api/v1/session").json()["method"] == "session"
    service = {"name": "web", "address": "127.0.0.1", "ports": [8080]}
    missing = browser.post("/api/v1/virtual-services", json=service)
    assert missing.status_code == 403
    assert missing.json()["field"] == "X-CSRF-Token"
    wrong = browser.post("/api/v1/virtual-services", json=service, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    assert api.version() == 0
    ok = browser.post("/api/v1/virtual-services", json=service, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201

    assert browser.delete("/api/v1/session").status_code == 403  # logout is unsafe too
    assert browser.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert "passerelle_session" not in browser.cookies
    browser.cookies["passerelle_session"] = cookie.split(";")[0].split("=", 1)[1]
    expired = browser.get("/api/v1/virtual-services")
    assert expired.status_code == 401
    assert "Basic" not in expired.headers["WWW-Authenticate"]  # no browser login box for the UI


def test_login_failures_are_rate_limited_per_address(api):
    browser = api.anonymous()
    for _ in range(5):
        failed = browser.post("/api/v1/session", json={"username": "admin", "password": "guess"})
        assert failed.status_code == 401
    limited = browser.post("/api/v1/session", json={"username": "admin", "password": "guess"})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # even the right password waits, and Basic is no way around it
    right = browser.post("/api/v1/session", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert right.status_code == 429
    assert api.client().get("/api/v1/config").status_code == 429
    audit = api.plane.audit.entries()
    assert [e.action for e in audit[:5]] == ["failed login as 'admin'"] * 5


def test_users_and_passwords(api, admin):
    created = admin.post("/api/v1/users", json={"name": "operator", "password": "op-password-1"})
    assert created.status_code == 201, created.text
    assert (
        admin.post(
            "/api/v1/users", json={"name": "operator", "password": "op-password-1"}
        ).status_code
        == 409
    )
    short = admin.post("/api/v1/users", json={"name": "x", "password": "short"})
    assert short.status_code == 422 and short.json()["field"] == "password"
    assert sorted(u["name"] for u in admin.get("/api/v1/users").json()) == ["admin", "operator"]

    operator = api.client(auth=("operator", "op-password-1"))
    assert operator.get("/api/v1/users/operator").status_code == 200
    own = operator.put("/api/v1/users/operator/password", json={"password": "op-password-2"})
    assert own.status_code == 403 and own.json()["field"] == "current_password"
    changed = operator.put(
        "/api/v1/users/operator/password",
        json={"password": "op-password-2", "current_password": "op-password-1"},
    )
    assert changed.status_code == 204
    assert operator.get("/api/v1/users").status_code == 401
    assert api.client(auth=("operator", "op-password-2")).get("/api/v1/users").status_code == 200

    assert admin.delete("/api/v1/users/admin").status_code == 409  # not oneself
    assert admin.delete("/api/v1/users/operator").status_code == 204
    assert admin.get("/api/v1/users/operator").status_code == 404


def test_audit_log_says_who_changed_what_from_where(api, admin):
    admin.post(
        "/api/v1/virtual-services", json={"name": "web", "address": "127.0.0.1", "ports": [80]}
    )
    admin.post(
        "/api/v1/virtual-services", json={"name": "web", "address": "127.0.0.1", "ports": [80]}
    )
    entries = admin.get("/api/v1/audit").json()
    assert len(entries) == 1  # the refused duplicate changed nothing
    entry = entries[0]
    assert entry["user"] == "admin"
    assert entry["address"] == "127.0.0.1"
    assert entry["method"] == "POST"
    assert entry["action"] == "create virtual service web"
    assert entry["version"] == 1 and entry["status"] == 201
    assert admin.get("/api/v1/audit?limit=0").status_code == 400


def test_unknown_paths_and_methods_answer_json(admin):
    missing = admin.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["field"] == ""
    wrong_method = admin.request("PATCH", "/api/v1/virtual-services")
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["Allow"]


def test_cross_site_requests_are_refused_even_with_credentials(api, admin):
    # what a browser sends when another site posts a form while Basic credentials are cached
    form = admin.post(
        "/api/v1/virtual-services/web/disable", headers={"Origin": "https://evil.example"}
    )
    assert form.status_code == 403 and form.json()["field"] == "Origin"
    fetch = admin.post(
        "/api/v1/tokens", json={"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert fetch.status_code == 403
    same = admin.post(
        "/api/v1/tokens",
        json={"name": "x"},
        headers={"Origin": api.url, "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 201
    text_plain = admin.post(
        "/api/v1/virtual-services",
        data=b'{"name": "web", "address": "127.0.0.1", "ports": [80]}',
        headers={"Content-Type": "text/plain"},
    )
    assert text_plain.status_code == 415
    assert api.version() == 0
