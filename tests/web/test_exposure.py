"""What the playground shows to the network: the Host check (DNS rebinding), the security
headers on every response, no docs page from a CDN, no local paths in errors, HEAD, and the
warning when it listens beyond loopback."""

import pytest
from fastapi.testclient import TestClient

from optimlab.web import server
from optimlab.web.server import CSP, allowed_hosts, create_app, host_allowed


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example",
                                  "localhost.evil.example:8000", "[::2]:8000", "0.0.0.0:8000",
                                  "192.168.1.5:8000"])
def test_a_foreign_host_header_is_refused(client, host):
    for path in ("/", "/api/limits", "/static/app.js"):
        answer = client.get(path, headers={"Host": host})
        assert answer.status_code == 400, (path, host, answer.status_code)
        body = answer.json()
        assert "Host" in body["message"] and body["detail"][0]["loc"] == ["header", "host"]
        assert answer.headers["content-security-policy"] == CSP
    race = client.post("/api/race", headers={"Host": host},
                       json={"landscape": "rosenbrock", "optimizers": [{"name": "adam"}]})
    assert race.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost:5173", "LOCALHOST",
                                  "[::1]:8000", "[::1]"])
def test_loopback_names_are_answered(client, host):
    assert client.get("/api/limits", headers={"Host": host}).status_code == 200


def test_with_a_known_port_only_that_port_is_answered():
    app = create_app(None, warm=False, hosts=allowed_hosts("127.0.0.1", 8123))
    with TestClient(app, base_url="http://127.0.0.1:8123") as client:
        assert client.get("/api/limits").status_code == 200
        for host in ("localhost:8123", "[::1]:8123"):
            assert client.get("/api/limits", headers={"Host": host}).status_code == 200
        for host in ("127.0.0.1:8124", "127.0.0.1", "localhost:80", "evil.example:8123"):
            assert client.get("/api/limits", headers={"Host": host}).status_code == 400, host


def test_allowed_hosts_follow_the_bound_address():
    assert allowed_hosts("127.0.0.1", 8000) == ("127.0.0.1:8000", "localhost:8000", "[::1]:8000")
    assert allowed_hosts("localhost", 0) == ("127.0.0.1", "localhost", "[::1]")
    assert allowed_hosts("::1", 80) == ("127.0.0.1:80", "localhost:80", "[::1]:80", "127.0.0.1",
                                        "localhost", "[::1]")
    assert allowed_hosts("192.168.1.5", 8000) == ("192.168.1.5:8000",)
    assert allowed_hosts("fe80::1", 8000) == ("[fe80::1]:8000",)
    assert allowed_hosts("0.0.0.0", 8000) is None and allowed_hosts("::", 8000) is None
    assert not host_allowed(None, ("localhost",)) and not host_allowed("", ("localhost",))
    assert host_allowed("anything:1", None)
    assert not host_allowed("[::1", ("[::1]",))


def test_every_response_carries_the_security_headers(client):
    answers = [client.get(path) for path in (
        "/", "/static/app.js", "/static/style.css", "/static/plotly.min.js", "/api/limits",
        "/api/landscapes", "/api/optimizers", "/api/sweeps", "/api/sweeps/999",
        "/api/landscapes/rosenbrock/grid?n=5", "/static/missing.js", "/api/nowhere",
        "/api/openapi.json")]
    answers.append(client.post("/api/race", json={"landscape": "nowhere"}))
    answers.append(client.delete("/api/limits"))
    assert {a.status_code for a in answers} == {200, 404, 405, 422}
    for answer in answers:
        assert answer.headers["content-security-policy"] == CSP, answer.url
        assert answer.headers["x-content-type-options"] == "nosniff", answer.url
        assert answer.headers["referrer-policy"] == "no-referrer", answer.url


def test_errors_keep_the_api_format(client):
    for answer in (client.delete("/api/limits"), client.get("/api/nowhere"),
                   client.post("/api/race", content=b"\xff\xfe",
                               headers={"Content-Type": "application/json"})):
        body = answer.json()
        assert answer.status_code in (400, 404, 405, 422) and body["message"] and body["detail"]
    assert client.delete("/api/limits").headers["allow"] == "GET"


def test_no_api_docs_page_and_nothing_from_a_cdn(client):
    # no Swagger UI or ReDoc (they load from a CDN); /docs/ is the optimizer reference
    for path in ("/api/docs", "/api/redoc", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path
    for path in ("/docs", "/docs/"):
        reference = client.get(path)
        assert reference.status_code == 200 and "the optimizers" in reference.text, path
        assert "swagger" not in reference.text.lower() and "cdn" not in reference.text.lower()
    schema = client.get("/api/openapi.json")
    assert schema.status_code == 200 and schema.json()["paths"]
    assert "cdn" not in schema.text.lower()


def test_not_found_messages_do_not_say_where_the_store_is(client, sweep_db):
    path = sweep_db[0]
    answer = client.get("/api/sweeps/999")
    assert answer.status_code == 404 and "no sweep 999" in answer.json()["message"]
    for text in (str(path), str(path.parent), path.name):
        assert text not in answer.text


@pytest.mark.parametrize("path, kind", [
    ("/", "text/html"), ("/static/app.js", "javascript"), ("/static/style.css", "text/css"),
    ("/static/plotly.min.js", "javascript"), ("/static/vendor/katex/katex.min.css", "text/css"),
])
def test_head_answers_like_get_without_a_body(client, path, kind):
    answer = client.head(path)
    assert answer.status_code == 200, (path, answer.status_code)
    assert kind in answer.headers["content-type"] and answer.content == b""
    assert int(answer.headers["content-length"]) == len(client.get(path).content)
    assert answer.headers["content-security-policy"] == CSP


def _served(monkeypatch, host, port):
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    server.serve(host=host, port=port)
    ((app, kw),) = calls
    assert (kw["host"], kw["port"]) == (host, port)
    return app


def test_serving_beyond_loopback_warns_on_stderr(monkeypatch, capsys):
    app = _served(monkeypatch, "0.0.0.0", 8080)
    err = capsys.readouterr().err
    assert "warning" in err and "0.0.0.0:8080" in err and "--host 127.0.0.1" in err
    with TestClient(app, base_url="http://192.168.1.5:8080") as client:  # opened on purpose
        assert client.get("/api/limits").status_code == 200
    app = _served(monkeypatch, "192.168.1.5", 8080)
    assert "192.168.1.5:8080" in capsys.readouterr().err
    with TestClient(app, base_url="http://192.168.1.5:8080") as client:
        assert client.get("/api/limits").status_code == 200
        assert client.get("/api/limits", headers={"Host": "evil.example:8080"}).status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_serving_on_loopback_is_quiet_and_checks_the_host(monkeypatch, capsys, host):
    app = _served(monkeypatch, host, 8000)
    assert capsys.readouterr().err == ""
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/limits").status_code == 200
        assert client.get("/api/limits", headers={"Host": "127.0.0.1:8001"}).status_code == 400
        assert client.get("/api/limits", headers={"Host": "evil.example"}).status_code == 400


def test_a_damaged_store_is_a_503_with_its_reason_not_its_place(tmp_path):
    db = tmp_path / "secret-place" / "runs.db"
    db.parent.mkdir()
    db.write_bytes(b"this is not a database " * 200)
    with TestClient(create_app(db, warm=False), base_url="http://127.0.0.1:8000") as client:
        for url in ("/api/sweeps", "/api/sweeps/1"):
            response = client.get(url)
            assert response.status_code == 503, (url, response.text)
            body = response.json()
            assert "run store" in body["message"] and "runs.db" in body["message"]
            assert "secret-place" not in response.text
            assert response.headers["X-Content-Type-Options"] == "nosniff"
