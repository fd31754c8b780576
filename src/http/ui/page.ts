/**
 * The opening every built-in page shares, up to its `<style>` (dashboard.ts, docs.ts): the
 * document head's meta tags, an empty icon (no request for /favicon.ico) and the title.
 * `__NONCE__` is replaced per response (CSP nonce).
 */
export function pageHead(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="data:,">
<title>${title}</title>
<style nonce="__NONCE__">`
}
