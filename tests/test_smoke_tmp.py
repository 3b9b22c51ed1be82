async def test_flow(service):
    c = service.client
    for body in [b'{"order_id": 3, "amount": "100"}', b'{"order_id": 3, "amount": true}', b'{"order_id": 3, "amount": null}', b'{"order_id": "3", "amount": 100}', b'{"order_id": 3, "amount": 100, "x": 1}', b'{"order_id": 3, "amount": 1e400}', b'{"order_id": 0, "amount": 100}', b'{"order_id": 9223372036854775808, "amount": 100}', b'[]', b'', b'\xff\xfe']:
        r3 = await c.post("/api/v1/payments", content=body); print(body, r3.status_code, r3.headers.get("content-type"), r3.text)
    r = await c.post("/api/v1/payments/", json={"order_id": 1, "amount": 100})
    print(r.status_code, r.text)
    r = await c.post("/api/v1/payments/refund", json={"payment_id": 1, "reason": "x", "amount": "100"}); print(r.status_code, r.text)
    r = await c.post("/api/v1/payments/refund", json={"payment_id": 1, "reason": "x", "amount": 101}); print(r.status_code, r.text)
    r = await c.post("/api/v1/payments/refund", json={"payment_id": 1, "reason": "x\u0000", "amount": 100}); print(r.status_code, r.text)
    r = await c.post("/api/v1/payments/refund", json={"payment_id": 1, "reason": "x", "amount": 100}); print(r.status_code, r.text)
    r = await c.post("/api/v1/payments/refund", json={"payment_id": 1, "reason": "x", "amount": 100}); print(r.status_code, r.text)
    r = await c.get("/api/v1/payments/1"); print(r.status_code, r.text)
    assert 0
