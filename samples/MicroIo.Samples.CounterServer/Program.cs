using MicroIo.Samples.CounterServer;

CounterDemo.Run(Console.Out);
