async def test_healthz_reports_the_database_as_reachable(client):
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["database"] == "ok"


async def test_openapi_document_lists_every_case_action(client):
    doc = (await client.get("/api/openapi.json")).json()
    assert "/api/cases/{number}/sign" in doc["paths"]
    body = doc["paths"]["/api/cases"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    new_case = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert "content" in new_case["required"]
    assert new_case["properties"]["content"]["maxLength"] == 4000
