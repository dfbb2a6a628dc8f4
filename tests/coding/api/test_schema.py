import re
from pathlib import Path

import pytest
import yaml
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


def test_schema_is_openapi_3_with_every_endpoint(anonymous):
    response = anonymous.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/auth/token/",
        "/api/projects/",
        "/api/projects/{slug}/",
        "/api/projects/{slug}/events/",
        "/api/projects/{slug}/policies/",
        "/api/projects/{slug}/policies/{number}/",
        "/api/projects/{slug}/policies/{number}/done/",
        "/api/projects/{slug}/nodes/",
        "/api/projects/{slug}/nodes/{node_id}/",
        "/api/projects/{slug}/nodes/{node_id}/merge/",
        "/api/projects/{slug}/references/",
        "/api/projects/{slug}/references/{reference_id}/",
        "/api/projects/{slug}/policies/{number}/text/",
        "/api/projects/{slug}/policies/{number}/resegment/",
        "/api/projects/{slug}/policies/{number}/clauses/{clause_number}/",
        "/api/projects/{slug}/policies/{number}/clauses/{clause_number}/split/",
        "/api/projects/{slug}/policies/{number}/clauses/{clause_number}/merge/",
        "/api/projects/{slug}/members/",
        "/api/projects/{slug}/members/{username}/",
        "/api/projects/{slug}/distribution/",
        "/api/projects/{slug}/trend/",
        "/api/projects/{slug}/words/",
        "/api/projects/{slug}/words/stopwords/",
        "/api/projects/{slug}/search/",
        "/api/projects/{slug}/search/code/",
        "/api/projects/{slug}/agreement/",
        "/api/projects/{slug}/agreement/disagreements/",
        "/api/projects/{slug}/agreement/adjudications/",
        "/api/projects/{slug}/agreement/adopt/",
        "/api/projects/{slug}/policies/import/",
        "/api/projects/{slug}/nodes/import/",
        "/api/projects/{slug}/nodes/export/{fmt}/",
        "/api/projects/{slug}/references/restore/",
        "/api/projects/{slug}/references/export/{fmt}/",
        "/api/projects/{slug}/interchange/qdpx/",
        "/api/projects/{slug}/interchange/qdc/",
        "/api/projects/{slug}/interchange/import/",
    }
    assert set(schema["components"]["securitySchemes"]) == {"tokenAuth", "cookieAuth"}


def test_schema_documents_filters_and_errors(anonymous):
    schema = yaml.safe_load(anonymous.get("/api/schema/?format=json").content)
    references = schema["paths"]["/api/projects/{slug}/references/"]
    params = {p["name"] for p in references["get"]["parameters"]}
    patch = schema["paths"]["/api/projects/{slug}/references/{reference_id}/"]["patch"]

    assert {"policy", "clause", "node", "coder", "layer", "page", "page_size"} <= params
    assert {"200", "400", "401", "403", "404", "409", "413"} <= set(patch["responses"])
    assert set(schema["paths"]["/api/auth/token/"]["post"]["responses"]) == {"200", "400", "413", "415", "429"}


def test_schema_documents_refusals_and_whole_patch_bodies(anonymous):
    schema = yaml.safe_load(anonymous.get("/api/schema/?format=json").content)
    paths = schema["paths"]
    merge = paths["/api/projects/{slug}/policies/{number}/clauses/{clause_number}/merge/"]["post"]
    member = paths["/api/projects/{slug}/members/{username}/"]
    components = schema["components"]["schemas"]

    # Writes without input can still be refused by a rule (the last clause, the only admin).
    assert "400" in merge["responses"] and "400" in member["delete"]["responses"]
    assert {"200", "201"} <= set(paths["/api/projects/{slug}/members/"]["post"]["responses"])
    # PATCH bodies that must be whole say so; partial ones (a policy's metadata) do not.
    assert components["MemberRoleRequest"]["required"] == ["role"]
    assert components["ClauseUpdateRequest"]["required"] == ["end", "start"]
    assert components["ReferenceUpdateRequest"]["required"] == ["version"]
    assert "required" not in components["PatchedPolicyUpdateRequest"]
    [username] = [p for p in member["get"]["parameters"] if p["name"] == "username"]
    assert username["schema"]["pattern"] == r"^[\w.@+-]{1,150}$"


def test_schema_documents_uploads_and_file_answers(anonymous):
    schema = yaml.safe_load(anonymous.get("/api/schema/?format=json").content)
    paths, components = schema["paths"], schema["components"]["schemas"]

    for path in ("policies/import/", "nodes/import/", "interchange/import/"):
        body = paths[f"/api/projects/{{slug}}/{path}"]["post"]["requestBody"]
        assert list(body["content"]) == ["multipart/form-data"], path
        form = body["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
        file = components[form]["properties"]["file"]
        assert (file["type"], file["format"]) == ("string", "binary"), path
        assert components[form]["required"] == ["file"], path
    policy_import = paths["/api/projects/{slug}/policies/import/"]["post"]["responses"]
    assert {"200", "201", "400", "401", "403", "404", "413", "415"} <= set(policy_import)
    binary = {"type": "string", "format": "binary"}
    files = {
        "nodes/export/{fmt}/": {"text/csv": binary, "application/json": {"type": "array"}},
        "references/export/{fmt}/": {
            "text/csv": binary,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": binary,
        },
        "interchange/qdpx/": {"application/zip": binary},
        "interchange/qdc/": {"application/xml": binary},
    }
    for path, media in files.items():
        content = paths[f"/api/projects/{{slug}}/{path}"]["get"]["responses"]["200"]["content"]
        assert set(content) == set(media), path
        for media_type, schema_part in media.items():
            assert schema_part.items() <= content[media_type]["schema"].items(), (path, media_type)
    restore = paths["/api/projects/{slug}/references/restore/"]["post"]["responses"]
    delete = paths["/api/projects/{slug}/references/{reference_id}/"]["delete"]["responses"]
    assert {"200", "201"} <= set(restore)
    assert delete["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Deleted"}
    assert "204" not in delete


def test_docs_page_uses_vendored_swagger_ui_and_no_cdn(client):
    response = client.get("/api/docs/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-schema-url="/api/schema/"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert all(url.startswith("/static/") for url in assets), assets
    for url in assets:
        assert finders.find(url.removeprefix("/static/")), url
    assert "<style" not in html and re.search(r"<script>", html) is None  # no inline code (CSP-friendly)


def test_vendored_swagger_ui_is_recorded(db):
    vendored = (ROOT / "static" / "VENDORED.md").read_text()
    bundle = ROOT / "static" / "coding" / "vendor" / "swagger-ui" / "swagger-ui-bundle.js"

    assert "swagger-ui-dist" in vendored and "5.35.0" in vendored
    assert bundle.stat().st_size > 1_000_000
    assert "https://" not in (ROOT / "static" / "coding" / "js" / "api-docs.js").read_text()
