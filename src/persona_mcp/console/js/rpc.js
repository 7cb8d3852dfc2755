// A JSON-RPC 2.0 client over the server's WebSocket door (/mcp).
//
//   const rpc = new RpcClient(url, token);
//   await rpc.connect();
//   const { personas } = await rpc.call("persona.list");
//
// Replies are matched to requests by id, so calls may overlap. A notification whose
// params carry the `request_id` of a call in flight (persona.chat.delta) goes to that
// call's `onNotify`; every other notification (events) goes to the handlers registered
// with `on(method, handler)`. Browsers cannot set headers on a WebSocket, so a token
// travels as the subprotocol `bearer.<token>` beside `persona-mcp`, which the server
// echoes; it never appears in the URL.

const CLOSE_REASONS = {
  1000: "closed normally",
  1001: "the server is going away",
  1006: "the connection dropped",
  1008: "refused by the server's policy",
  1009: "a message was over the server's size limit (MAX_MESSAGE_BYTES)",
  1011: "the server hit an internal error",
  1012: "the server is restarting",
};

export class RpcError extends Error {
  /** An error answer from the server (code, message, data as sent), or a local failure
   * (code null) such as a dropped connection. */
  constructor(method, code, message, data = null) {
    super(message);
    this.name = "RpcError";
    this.method = method;
    this.code = code;
    this.data = data;
  }
}

export function closeReason(code) {
  return CLOSE_REASONS[code] || `closed with code ${code}`;
}

export class RpcClient {
  constructor(url, token = null) {
    this.url = url;
    this.token = token;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map(); // id -> {method, resolve, reject, onNotify}
    this.handlers = new Map(); // notification method -> Set of handlers
    this.closeHandlers = new Set();
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Resolves once the door accepts the connection; rejects when it is refused. */
  connect() {
    const protocols = ["persona-mcp"];
    if (this.token) protocols.push(`bearer.${this.token}`);
    return new Promise((resolve, reject) => {
      let opened = false;
      const ws = new WebSocket(this.url, protocols);
      this.ws = ws;
      ws.addEventListener("open", () => {
        opened = true;
        resolve();
      });
      ws.addEventListener("message", (event) => this.receive(event.data));
      ws.addEventListener("close", (event) => {
        if (this.ws !== ws) return; // an older connection, already replaced
        this.failPending(`The connection ${closeReason(event.code)} before the server answered`);
        if (!opened) {
          reject(new RpcError("connect", null, `The WebSocket door refused the connection (${closeReason(event.code)})`));
          return;
        }
        for (const handler of this.closeHandlers) handler(event);
      });
    });
  }

  close() {
    if (this.ws) this.ws.close(1000);
  }

  /** `handler(event)` when an open connection closes (not when a connect is refused). */
  onClose(handler) {
    this.closeHandlers.add(handler);
  }

  /** `handler(params)` for each notification of this method (events.subscribe topics). */
  on(method, handler) {
    if (!this.handlers.has(method)) this.handlers.set(method, new Set());
    this.handlers.get(method).add(handler);
    return () => this.handlers.get(method).delete(handler);
  }

  /**
   * Call a method; resolves with its result or rejects with the server's RpcError.
   * `onNotify(method, params)` receives the notifications the server sends for this call;
   * aborting `signal` asks the server to cancel it (notifications/cancelled).
   */
  call(method, params = {}, { onNotify = null, signal = null } = {}) {
    if (!this.open) {
      return Promise.reject(new RpcError(method, null, "Not connected to the server"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { method, resolve, reject, onNotify });
      if (signal) {
        signal.addEventListener(
          "abort",
          () => this.notify("notifications/cancelled", { requestId: id, reason: "cancelled in the console" }),
          { once: true },
        );
      }
      this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }

  notify(method, params = {}) {
    if (this.open) this.ws.send(JSON.stringify({ jsonrpc: "2.0", method, params }));
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      console.error("persona-mcp console: a frame that is not JSON", text);
      return;
    }
    for (const item of Array.isArray(message) ? message : [message]) this.dispatch(item);
  }

  dispatch(item) {
    if ("id" in item && !("method" in item)) {
      const call = this.pending.get(item.id);
      if (!call) return;
      this.pending.delete(item.id);
      if (item.error) {
        const { code, message, data } = item.error;
        call.reject(new RpcError(call.method, code, message, data ?? null));
      } else {
        call.resolve(item.result);
      }
      return;
    }
    if (typeof item.method !== "string") return;
    const params = item.params || {};
    const call = params.request_id !== undefined ? this.pending.get(params.request_id) : null;
    if (call && call.onNotify) {
      call.onNotify(item.method, params);
      return;
    }
    for (const handler of this.handlers.get(item.method) || []) handler(params);
  }

  failPending(message) {
    for (const call of this.pending.values()) call.reject(new RpcError(call.method, null, message));
    this.pending.clear();
  }
}
