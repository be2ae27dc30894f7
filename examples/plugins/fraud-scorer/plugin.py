"""Claims fraud scorer: an `action` for workflows and a before-write hook on claims."""

from plinth_sdk import Reject, action, before_write, log

WORDS = ("cash only", "urgent", "lost receipt", "total loss", "stolen")
HIGH_RISK = ("XX",)


def score_claim(claim):
    """The score and its reasons (pure; the same function the bench runs in plain Python)."""
    score, reasons = 0, []
    amount = float(claim.get("amount") or 0)
    if amount > 50_000:
        score += 40
        reasons.append("amount above 50,000")
    elif amount > 10_000:
        score += 20
        reasons.append("amount above 10,000")
    if amount and amount == round(amount, -3):
        score += 10
        reasons.append("round amount")
    prior = int(claim.get("prior_claims") or 0)
    if prior >= 3:
        score += 25
        reasons.append(f"{prior} prior claims")
    text = str(claim.get("description") or "").lower()
    for word in WORDS:
        if word in text:
            score += 10
            reasons.append(f"mentions '{word}'")
    if claim.get("country") in HIGH_RISK:
        score += 15
        reasons.append("high-risk country")
    score = min(score, 100)
    level = "high" if score >= 70 else "medium" if score >= 40 else "low"
    return {"score": score, "level": level, "reasons": reasons}


@action("score")
def score(input):
    result = score_claim(input)
    log(f"scored {result['score']}")
    return result


@before_write
def check_claim(app, entity, record):
    result = score_claim(record)
    if result["level"] == "high":
        raise Reject(
            ("amount", "Fraud risk too high to save automatically: " + "; ".join(result["reasons"]))
        )
    record["fraud_score"] = result["score"]
    return record
