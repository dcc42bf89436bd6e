// Errors the API answers with: a stable code for programs and a sentence for people.

export type ApiErrorCode =
  | "invalid-request"
  | "unauthorized"
  | "not-found"
  | "conflict"
  | "invalid-transition"
  | "insufficient-capacity"
  | "vm-failed"
  | "internal";

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly statusCode: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }

  toJSONBody(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

export const invalid = (message: string): ApiError => new ApiError(400, "invalid-request", message);
export const notFound = (message: string): ApiError => new ApiError(404, "not-found", message);
export const conflict = (message: string): ApiError => new ApiError(409, "conflict", message);
export const illegalTransition = (message: string): ApiError => new ApiError(409, "invalid-transition", message);
export const noCapacity = (message: string): ApiError => new ApiError(409, "insufficient-capacity", message);
export const vmFailed = (message: string): ApiError => new ApiError(502, "vm-failed", message);

/** The JSON body of every error response. */
export interface ErrorBody {
  code: ApiErrorCode;
  message: string;
}
