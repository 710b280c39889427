export { FolderWatcher, freeName, isIgnored } from './folderWatcher.js';
export type { FolderWatcherOptions, WatchQueue } from './folderWatcher.js';
