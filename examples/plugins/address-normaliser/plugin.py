"""Address normaliser: asks an address service over `http`, falls back to local clean-up."""

from urllib.parse import quote

from plinth_sdk import CapabilityError, action, http, kv, log

DEFAULT_ENDPOINT = "https://addresses.example.com"


@action("configure")
def configure(input):
    kv.set("endpoint", input["endpoint"].rstrip("/"))
    return {"endpoint": input["endpoint"]}


def tidy(address):
    return " ".join(part.capitalize() for part in address.replace(",", " , ").split()).replace(
        " ,", ","
    )


@action("normalise")
def normalise(input):
    endpoint = kv.get("endpoint") or DEFAULT_ENDPOINT
    url = f"{endpoint}/normalise?q={quote(input['address'])}&country={input.get('country', '')}"
    try:
        reply = http.fetch(url)
    except CapabilityError as exc:
        log(f"address service refused: {exc}", level="warning")
        raise
    if reply["status"] != 200 or not isinstance(reply["json"], dict):
        return {"address": tidy(input["address"]), "postcode": None, "source": "local"}
    found = reply["json"]
    return {
        "address": found.get("address", ""),
        "postcode": found.get("postcode"),
        "source": "service",
    }
