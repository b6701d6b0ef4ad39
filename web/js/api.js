// The one place the page talks to the server: same-origin `/api/...` calls with JSON,
// the anti-CSRF header, and errors turned into plain-words `ApiError`s.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from a 429/503's Retry-After header
  }
}

const FALLBACK_MESSAGES = {
  0: 'The server could not be reached. Check your connection and try again.',
  401: 'Your sign-in has expired. Sign in again.',
  403: 'This is for administrators only.',
  404: 'The server does not know this address (404). It may not be available in this version yet.',
  405: 'The server does not allow this action here (405).',
  413: 'That is too large for the server to accept.',
  429: 'The server is busy. Wait a moment and try again.',
  500: 'Something went wrong on the server. Try again; if it keeps happening, check the server log.',
  502: 'The server could not reach Microsoft. Try again in a minute.',
  503: 'The server is not ready. Try again in a minute.',
};

let authProblemHandler = null;

/** Called with the ApiError when the server says 401 (signed out) or 403 (not an administrator). */
export function onAuthProblem(handler) {
  authProblemHandler = handler;
}

/**
 * Call the API. `options.json` sends a JSON body; `options.file` sends a file's bytes with
 * `options.contentType`; `options.query` adds query parameters (empty values skipped).
 * Returns the parsed JSON (or null for an empty answer); throws ApiError.
 */
export async function api(method, path, options = {}) {
  if (!path.startsWith('/api/')) throw new Error('the page calls only /api/ endpoints');
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(options.query || {})) {
    if (value !== null && value !== undefined && value !== '') url.searchParams.set(name, String(value));
  }
  const headers = { 'X-Requested-With': 'fetch', Accept: 'application/json' };
  let body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.file !== undefined) {
    headers['Content-Type'] = options.contentType || 'application/octet-stream';
    body = options.file;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', FALLBACK_MESSAGES[0]);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && typeof data === 'object' && data.error && typeof data.error === 'object' ? data.error : {};
    const message = typeof error.message === 'string' && error.message
      ? error.message
      : FALLBACK_MESSAGES[response.status] || `The server answered ${response.status}.`;
    const retryAfter = Number.parseInt(response.headers.get('Retry-After') || '', 10);
    const problem = new ApiError(response.status, typeof error.code === 'string' ? error.code : `http_${response.status}`,
      message, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null);
    if ((response.status === 401 || response.status === 403) && authProblemHandler && !options.quietAuth) {
      authProblemHandler(problem);
    }
    throw problem;
  }
  return data;
}

/** Encode one path segment (an account id, an email) for a URL. */
export function seg(value) {
  return encodeURIComponent(String(value));
}
