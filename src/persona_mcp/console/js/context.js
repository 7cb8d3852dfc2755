// What the panels share: the connection, the user's personas, and the one the console
// is looking at (kept across reloads in localStorage). Panels listen for "personas"
// (the list changed) and "persona" (another one was chosen).

const KEY = "persona-mcp.console.persona";

export class Context extends EventTarget {
  constructor(rpc) {
    super();
    this.rpc = rpc;
    this.personas = [];
    this.personaId = localStorage.getItem(KEY);
  }

  get persona() {
    return this.personas.find((p) => p.id === this.personaId) || null;
  }

  personaName(id) {
    if (id === "user") return "you";
    const found = this.personas.find((p) => p.id === id);
    return found ? found.name : id;
  }

  async refreshPersonas() {
    const { personas, active_persona_id: active } = await this.rpc.call("persona.list");
    this.personas = personas;
    if (!this.persona) {
      const fallback = personas.find((p) => p.id === active) || personas[0];
      this.personaId = fallback ? fallback.id : null;
    }
    this.dispatchEvent(new Event("personas"));
    return personas;
  }

  selectPersona(id) {
    if (id === this.personaId) return;
    this.personaId = id;
    localStorage.setItem(KEY, id);
    this.dispatchEvent(new Event("persona"));
  }

  /** Go to a panel by its id (the URL hash). */
  go(panel) {
    if (location.hash !== `#${panel}`) location.hash = panel;
  }
}
