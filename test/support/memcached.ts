/** Tests start real memcached on free loopback ports with the same launcher the demo uses. */
export * from '../../src/jobs/local-memcached.js';
