// A client of the daemon's API, over the local UNIX socket or a remote http(s) URL with a token.
// Used by `nodevisor vm`, the tests and the benchmarks.

import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import WebSocket from "ws";

export interface ApiClientOptions {
  /** The daemon's UNIX socket (the default way in). */
  socketPath?: string;
  /** http://host:port or https://host:port, with `token`. */
  url?: string;
  token?: string;
  /** Accept this CA (PEM) for https. */
  ca?: Buffer;
}

/** The daemon answered with an error: its status, stable code and sentence. */
export class ApiClientError extends Error {
  override name = "ApiClientError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export class ApiClient {
  constructor(private readonly o: ApiClientOptions) {
    if ((o.socketPath === undefined) === (o.url === undefined)) throw new Error("Give the daemon's socket path or its URL, not both.");
  }

  raw(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<RawResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { ...extraHeaders };
    if (payload !== undefined) headers["content-type"] = "application/json";
    if (this.o.token !== undefined && headers.authorization === undefined) headers.authorization = `Bearer ${this.o.token}`;
    return new Promise((resolve, reject) => {
      const onResponse = (res: import("node:http").IncomingMessage): void => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      };
      let req;
      if (this.o.socketPath !== undefined) {
        req = httpRequest({ socketPath: this.o.socketPath, path, method, headers }, onResponse);
      } else {
        const u = new URL(path, this.o.url);
        const make = u.protocol === "https:" ? httpsRequest : httpRequest;
        req = make(u, { method, headers, ...(this.o.ca ? { ca: this.o.ca } : {}) }, onResponse);
      }
      req.on("error", (e: NodeJS.ErrnoException) => reject(this.connectionError(e)));
      req.end(payload);
    });
  }

  /** Calls the API; resolves with the parsed JSON body (or text), rejects with ApiClientError. */
  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, path, body);
    const isJson = String(res.headers["content-type"] ?? "").includes("json");
    const parsed = isJson && res.text.length > 0 ? JSON.parse(res.text) : res.text;
    if (res.status >= 400) {
      const code = isJson && typeof parsed.code === "string" ? parsed.code : "unknown";
      const message = isJson && typeof parsed.message === "string" ? parsed.message : `The daemon answered ${res.status}.`;
      throw new ApiClientError(res.status, code, message);
    }
    return parsed as T;
  }

  /** Opens a WebSocket to an API path (console, event stream). */
  websocket(path: string): WebSocket {
    const headers: Record<string, string> = {};
    if (this.o.token !== undefined) headers.authorization = `Bearer ${this.o.token}`;
    if (this.o.socketPath !== undefined) return new WebSocket(`ws+unix://${this.o.socketPath}:${path}`, { headers });
    const u = new URL(path, this.o.url);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return new WebSocket(u, { headers, ...(this.o.ca ? { ca: this.o.ca } : {}) });
  }

  private connectionError(e: NodeJS.ErrnoException): Error {
    const where = this.o.socketPath ?? this.o.url;
    if (e.code === "ENOENT" || e.code === "ECONNREFUSED") {
      return new ApiClientError(0, "unreachable", `No nodevisor daemon answers at ${where}; start one with \`nodevisor daemon\` (or give --host).`);
    }
    return new ApiClientError(0, "unreachable", `Cannot reach the daemon at ${where}: ${e.message}.`);
  }
}
