// <fraud-badge>: a claim's fraud score as a coloured badge, for Plinth portal pages.
// Plain JavaScript, no build step. The portal sets each prop as a property (`record`,
// `score`, `label`) and `plinth`, the host API (`plinth.record(entity, id)` reads a record
// under the signed-in user, so policies apply).

const LEVELS = [
  [70, "high", "#b42318", "#fee4e2"],
  [40, "medium", "#b54708", "#fef0c7"],
  [0, "low", "#067647", "#dcfae6"],
];

class FraudBadge extends HTMLElement {
  static get observedAttributes() { return ["score", "record", "label"]; }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    // The portal may set props before this module has loaded (the element is upgraded
    // later): move those plain properties through the setters.
    for (const p of ["score", "record", "label"]) {
      if (Object.prototype.hasOwnProperty.call(this, p)) { const v = this[p]; delete this[p]; this[p] = v; }
    }
  }

  set score(v) { this._score = v; this.render(); }
  get score() { return this._score; }
  set record(v) { this._record = v; this._loaded = undefined; this.load(); }
  get record() { return this._record; }
  set label(v) { this._label = v; this.render(); }

  attributeChangedCallback(name, _old, value) { this[name] = name === "score" ? Number(value) : value; }
  connectedCallback() { this.load(); this.render(); }

  async load() {
    if (this._score !== undefined || !this._record || !this.plinth || this._loaded === this._record) return;
    this._loaded = this._record;
    try {
      const claim = await this.plinth.record("claim", this._record);
      this._fetched = claim.fraud_score;
    } catch (e) {
      this._fetched = null;
    }
    this.render();
  }

  render() {
    if (!this.shadowRoot) return;
    const score = this._score ?? this._fetched;
    const label = this._label || "Fraud risk";
    if (score === undefined) { this.shadowRoot.textContent = ""; return; }
    const known = typeof score === "number" && !Number.isNaN(score);
    const [, level, fg, bg] = known ? LEVELS.find(([min]) => score >= min) : [0, "unknown", "#475467", "#f2f4f7"];
    this.dataset.level = level;
    this.shadowRoot.innerHTML = `<style>
      span { display: inline-block; padding: .2rem .6rem; border-radius: 999px; font: 600 .85rem system-ui, sans-serif; }
    </style><span part="badge" role="status"></span>`;
    const badge = this.shadowRoot.querySelector("span");
    badge.style.color = fg;
    badge.style.background = bg;
    badge.textContent = known ? `${label}: ${Math.round(score)} (${level})` : `${label}: not scored`;
  }
}

if (!customElements.get("fraud-badge")) customElements.define("fraud-badge", FraudBadge);
