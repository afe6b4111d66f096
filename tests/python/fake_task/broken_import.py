raise RuntimeError("lbtest-broken-at-import")


def handler(event, context):
    return None
