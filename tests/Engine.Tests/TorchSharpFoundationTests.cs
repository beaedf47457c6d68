using TorchSharp;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Tests;

/// <summary>TorchSharp loads (libstdc++ workaround applied by the build) and computes.</summary>
public sealed class TorchSharpFoundationTests
{
    [Fact]
    public void Matmul_OfSmallMatrices_MatchesHandComputedProduct()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        var b = tensor(new float[] { 7, 8, 9, 10, 11, 12 }, [3, 2]);

        var c = matmul(a, b).data<float>().ToArray();

        // [1 2 3; 4 5 6] x [7 8; 9 10; 11 12] = [58 64; 139 154]
        Assert.Equal(new float[] { 58, 64, 139, 154 }, c);
    }

    [Fact]
    public void LinearLayer_WithKnownWeights_ComputesWxPlusB()
    {
        using var scope = NewDisposeScope();
        using var linear = nn.Linear(2, 3);
        using (no_grad())
        {
            linear.weight!.copy_(tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [3, 2]));
            linear.bias!.copy_(tensor(new float[] { 0.5f, -1, 0 }, [3]));
        }

        var y = linear.forward(tensor(new float[] { 1, 1, 2, -1 }, [2, 2])).data<float>().ToArray();

        // x=[1,1]: [1+2+0.5, 3+4-1, 5+6+0] ; x=[2,-1]: [2-2+0.5, 6-4-1, 10-6+0]
        Assert.Equal(new float[] { 3.5f, 6f, 11f, 0.5f, 1f, 4f }, y);
    }
}
