// @cycjimmy/jsmpeg-player ships no types; the console uses only this much of it.
declare module "@cycjimmy/jsmpeg-player" {
  interface PlayerOptions {
    canvas?: HTMLCanvasElement;
    autoplay?: boolean;
    audio?: boolean;
    disableGl?: boolean;
    preserveDrawingBuffer?: boolean;
    reconnectInterval?: number;
    onVideoDecode?: () => void;
    onSourceEstablished?: () => void;
  }
  class Player {
    constructor(url: string, options: PlayerOptions);
    destroy(): void;
  }
  const JSMpeg: { Player: typeof Player };
  export default JSMpeg;
}
