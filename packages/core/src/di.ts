// The only module of daxlab that imports tsyringe; reflect-metadata must load first
// (tsyringe throws at import time without a Reflect polyfill).
import 'reflect-metadata';
import {
  container as rootContainer,
  inject,
  injectable,
  Lifecycle,
  type DependencyContainer,
  type InjectionToken,
} from 'tsyringe';

export type { DependencyContainer, InjectionToken };
export { inject, Lifecycle };

/** A typed injection token. Symbol.for keeps tokens equal across duplicate copies of core. */
export function token<T>(name: string): InjectionToken<T> {
  return Symbol.for(`@daxlab/core:${name}`) as InjectionToken<T>;
}

/**
 * injectable() that demands an explicit @inject(TOKEN) on every constructor parameter:
 * decorator metadata is off (emitDecoratorMetadata: false), so an undecorated parameter
 * would silently arrive as undefined under esbuild/Oxc. This turns that into a load-time error.
 */
export function component() {
  return <C extends abstract new (...args: never[]) => unknown>(target: C): void => {
    const tokens: Record<number, unknown> = Reflect.getOwnMetadata('injectionTokens', target) ?? {};
    for (let i = 0; i < target.length; i++) {
      if (!(i in tokens)) throw new TypeError(`${target.name}: constructor parameter ${i} needs @inject(TOKEN)`);
    }
    injectable()(target as never);
  };
}

/** One child container per kernel: nothing is ever registered on the global root. */
export function createKernelContainer(): DependencyContainer {
  return rootContainer.createChildContainer();
}
