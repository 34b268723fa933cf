"""Certificates through the API: inspected on the way in, private keys never on the way out."""

from __future__ import annotations

from passerelle.engine.tls.certificates import make_self_signed

CERTS = "/api/v1/certificates"


def upload(name: str = "edge", key_type: str = "ecdsa-p256") -> dict:
    cert_pem, key_pem = make_self_signed(
        "edge.contoso.com", ["edge.contoso.com", "*.contoso.com"], key_type=key_type, days=90
    )
    return {"name": name, "cert_pem": cert_pem, "key_pem": key_pem}


def test_upload_list_read_never_shows_the_key(api, admin):
    body = upload()
    created = admin.post(CERTS, json=body)
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["dns_names"] == ["edge.contoso.com", "*.contoso.com"]
    assert info["key_type"] == "ecdsa-p256"
    assert info["has_key"] is True
    assert 88 <= info["days_left"] <= 90
    assert info["expired"] is False
    assert info["cert_pem"] == body["cert_pem"]

    listed = admin.get(CERTS)
    assert [c["name"] for c in listed.json()] == ["edge"]
    for answer in (created, listed, admin.get(f"{CERTS}/edge")):
        assert "key_pem" not in answer.text
        assert "PRIVATE KEY" not in answer.text
    assert api.store.current()[1].certificates[0].key_pem == body["key_pem"]


def test_bad_pem_and_mismatched_key_name_the_field(api, admin):
    garbage = admin.post(CERTS, json={"name": "x", "cert_pem": "not a certificate"})
    assert garbage.status_code == 422
    assert garbage.json()["field"] == "cert_pem"
    mismatched = {**upload("x"), "key_pem": upload("y")["key_pem"]}
    refused = admin.post(CERTS, json=mismatched)
    assert refused.status_code == 422
    assert refused.json()["field"] == "key_pem"
    assert api.version() == 0


def test_delete_is_refused_while_a_service_uses_it(api, admin):
    admin.post(CERTS, json=upload())
    admin.post(
        "/api/v1/virtual-services",
        json={
            "name": "web",
            "address": "127.0.0.1",
            "ports": [8443],
            "tls": {"certificates": ["edge"]},
        },
    )
    assert admin.get(f"{CERTS}/edge").json()["used_by"] == [
        "virtual_services[0].tls.certificates[0]"
    ]
    refused = admin.delete(f"{CERTS}/edge")
    assert refused.status_code == 409
    assert refused.json()["field"] == "virtual_services[0].tls.certificates[0]"
    assert "virtual_services[0].tls.certificates[0]" in refused.json()["error"]

    assert admin.delete("/api/v1/virtual-services/web").status_code == 204
    assert admin.delete(f"{CERTS}/edge").status_code == 204
    assert admin.get(f"{CERTS}/edge").status_code == 404
    assert api.store.current()[1].certificates == []


def test_replace_renews_in_place(api, admin):
    admin.post(CERTS, json=upload())
    renewed = admin.put(f"{CERTS}/edge", json=upload(key_type="rsa-2048"))
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["key_type"] == "rsa-2048"
    assert admin.put(f"{CERTS}/other", json=upload("other")).status_code == 404
    assert admin.post(CERTS, json=upload()).status_code == 409
