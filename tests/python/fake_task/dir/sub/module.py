def func(event, context):
    return {"loaded_from": __name__, "echo": event}
