/**
 * docsift/client: the client package (@docsift/client, packages/client), re-exported so code that
 * already imports docsift/client keeps working. New code installs @docsift/client alone.
 */
export * from '@docsift/client';
