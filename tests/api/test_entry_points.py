"""The two pages a newcomer opens first: the site's root and the API's root."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.urls import resolve


def test_the_site_root_links_the_api_its_docs_the_admin_and_the_ops_dashboard(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    for href in ("/api/", "/api/docs/", "/api/schema/", "/admin/", "/ops/"):
        assert f'href="{href}"' in page


def test_the_api_root_lists_every_endpoint_without_a_token(client):
    response = client.get("/api/")

    assert response.status_code == 200
    links = response.json()
    assert set(links) == {"messages", "notifications", "unread_notifications_count", "docs", "schema"}
    for url in links.values():
        assert url.startswith("http://testserver/api/")
        resolve(urlsplit(url).path)
    assert urlsplit(links["docs"]).path == "/api/docs/"
