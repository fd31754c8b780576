// @runrelay/sdk: the API client (typed calls for every route, tokens, trigger-and-wait) and the
// webhook verification helpers.
export * from './client.ts'
export * from './webhooks.ts'
